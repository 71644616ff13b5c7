"""Delivering the reminder outbox (ADR 0113): each due PENDING notice is claimed, sent to the account's platform by a
signed webhook or by SMS, and recorded DELIVERED, or tried again later with a doubling wait until its retry budget
is spent and it goes to the dead-letter list (DEAD). Sending happens outside any transaction; the claim (a
conditional UPDATE) keeps two replicas from sending one notice at once.

A notice is queued once per key; its webhook carries the key (X-Carbon-Notice-Key), so a receiver that saw it answer
2xx once ignores a resend after a crash between sending and recording (at-least-once on the wire, once per key).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Row

from identity_svc import store
from identity_svc.domain import reminders as rules
from identity_svc.domain.reminders import DeliveryState, Notice, ReminderKind
from identity_svc.service.accounts import AccountService
from service_kit import telemetry
from service_kit.clock import china_day
from service_kit.settings import Secret

log = logging.getLogger("carbon.identity.reminders")
PASS_SIZE = 100
WEBHOOK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: Secret


def load_webhooks(path: Path | None) -> dict[str, Webhook]:
    if path is None:
        return {}
    platforms = json.loads(path.read_text(encoding="utf-8")).get("platforms", {})
    return {name: Webhook(str(entry["url"]), Secret(str(entry["secret"]))) for name, entry in platforms.items()}


class SmsProvider(Protocol):
    def send(self, phone_number: str, text: str, notice_key: str) -> None:
        """Hands one message to the provider; raises when it refuses."""


class FileSms:
    """The embedded default: one JSON line per message in a file of the data folder, for staff to read."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def send(self, phone_number: str, text: str, notice_key: str) -> None:
        line = json.dumps({"notice_key": notice_key, "phone_number": phone_number, "text": text}, ensure_ascii=False)
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class DeliveryFailed(Exception):
    """One attempt failed, for a reason worth recording."""


class Deliverer:
    def __init__(
        self, accounts: AccountService, webhooks: dict[str, Webhook], sms: SmsProvider, *, tick_s: float = 1.0
    ) -> None:
        self._accounts = accounts
        self._webhooks = webhooks
        self._sms = sms
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        meter = telemetry.meter("carbon.identity.reminders")
        self._attempts = meter.create_counter(
            "identity.reminder.attempts",
            unit="{attempt}",
            description="reminder delivery attempts by route and outcome",
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="identity-reminders", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        pruned_at = float("-inf")
        while not self._stop.is_set():
            try:
                self.deliver_due()
                if time.monotonic() - pruned_at >= rules.PRUNE_EVERY_S:
                    self.prune_finished()
                    pruned_at = time.monotonic()
            except Exception as error:  # the database may be away for a while: the next pass tries again
                log.warning("reminder delivery pass failed", extra={"error": str(error)})
            self._stop.wait(self._tick_s)

    def prune_finished(self) -> int:
        """Deletes the notices delivered (or skipped) more than RETENTION_DAYS ago whose horizon has passed, in
        batches of PRUNE_BATCH, one transaction each (replicas pruning at once only delete fewer); returns how many.
        Queueing refuses notices past their horizon, so a pruned notice is never queued, nor sent, again."""
        now = self._accounts.clock()
        before_us = int(now.timestamp() * 1_000_000) - rules.RETENTION_DAYS * 86_400 * 1_000_000
        horizon = rules.horizon_on(china_day(now))
        pruned = 0
        while True:
            with self._accounts.engine.begin() as conn:
                deleted = store.reminders.prune(conn, before_us, horizon, rules.PRUNE_BATCH)
            pruned += deleted
            if deleted < rules.PRUNE_BATCH:
                break
        if pruned:
            log.info("reminder outbox pruned", extra={"pruned": pruned})
        return pruned

    def _now_us(self) -> int:
        return int(self._accounts.clock().timestamp() * 1_000_000)

    def deliver_due(self) -> int:
        """One pass over the notices due now; returns how many were delivered."""
        now_us = self._now_us()
        with self._accounts.engine.connect() as conn:
            due = store.reminders.due(conn, now_us, PASS_SIZE)
        delivered = 0
        for row in due:
            claim_until = now_us + int(WEBHOOK_TIMEOUT_S * 2 * 1_000_000)
            with self._accounts.engine.begin() as conn:
                if not store.reminders.claim(conn, row, claim_until):
                    continue
            delivered += self._attempt(row)
        return delivered

    def _attempt(self, row: Row[Any]) -> int:
        notice = _notice(row)
        route = str(row.route)
        try:
            self._send(notice, route)
        except DeliveryFailed as error:
            self._failed(row, str(error))
            self._attempts.add(1, {"route": route.split(":")[0], "outcome": "failed"})
            return 0
        with self._accounts.engine.begin() as conn:
            store.reminders.record_attempt(
                conn, notice.notice_key, state=DeliveryState.DELIVERED.value, attempts=row.attempts + 1,
                delivered_at_us=self._now_us(), last_error="",
            )  # fmt: skip
        self._attempts.add(1, {"route": route.split(":")[0], "outcome": "delivered"})
        return 1

    def _failed(self, row: Row[Any], error: str) -> None:
        attempts = int(row.attempts) + 1
        dead = attempts >= rules.RETRY_BUDGET
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:2000]}
        if dead:
            values["state"] = DeliveryState.DEAD.value
            log.warning("reminder dead after its retry budget", extra={"notice_key": row.notice_key, "error": error})
        else:
            values["next_attempt_at_us"] = self._now_us() + rules.retry_delay_us(attempts)
        with self._accounts.engine.begin() as conn:
            store.reminders.record_attempt(conn, str(row.notice_key), **values)

    def _send(self, notice: Notice, route: str) -> None:
        if route == "sms":
            self._send_sms(notice)
        elif route.startswith("webhook:"):
            self._post(notice, route.removeprefix("webhook:"))
        else:
            raise DeliveryFailed(f"unknown route {route!r}")

    def _post(self, notice: Notice, platform: str) -> None:
        webhook = self._webhooks.get(platform)
        if webhook is None:
            raise DeliveryFailed(f"no reminder webhook configured for platform {platform!r}")
        body = rules.encode_body(notice)
        timestamp_s = int(self._accounts.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            rules.TIMESTAMP_HEADER: str(timestamp_s),
            rules.SIGNATURE_HEADER: rules.signature(webhook.secret.reveal().encode(), timestamp_s, body),
            rules.NOTICE_KEY_HEADER: notice.notice_key,
        }
        request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as error:
            raise DeliveryFailed(f"{platform} webhook answered {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            raise DeliveryFailed(f"{platform} webhook unreachable: {error}") from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"{platform} webhook answered {status}")

    def _send_sms(self, notice: Notice) -> None:
        with self._accounts.engine.connect() as conn:
            row = store.accounts.account(conn, notice.account_number)
        phone = self._accounts.record(row).get("phone_number", "") if row is not None else ""
        if not phone:
            raise DeliveryFailed("the account has no phone number (closed?)")
        try:
            self._sms.send(phone, rules.sms_text(notice), notice.notice_key)
        except Exception as error:  # a provider's refusal is one failed attempt, whatever its type
            raise DeliveryFailed(f"SMS provider refused: {error}") from None


def _notice(row: Row[Any]) -> Notice:
    return Notice(
        notice_key=str(row.notice_key),
        account_number=str(row.account_number),
        kind=ReminderKind(int(row.kind)),
        points=int(row.points),
        expires_on=date.fromisoformat(row.expires_on) if row.expires_on else None,
        period=str(row.period),
    )
