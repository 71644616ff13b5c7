"""Reminders in identity (ADR 0113): queued once per notice key, delivered to the platform's webhook (a real local
HTTP server here) signed and retried with backoff, dead-lettered after the retry budget and retried by an operator,
sent by SMS (the embedded file provider) for counter accounts, never sent once the resident switched them off, and
pruned some time after delivery (dead letters kept)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from identity_svc.domain.accounts import Channel
from identity_svc.domain.reminders import (
    RETENTION_DAYS,
    RETRY_BUDGET,
    DeliveryState,
    Notice,
    QueueOutcome,
    ReminderKind,
    horizon_on,
    past_horizon,
)
from identity_svc.server import IdentityServices
from identity_svc.service.reminder_delivery import Deliverer, FileSms, Webhook
from service_kit.accounts import new_account_number
from service_kit.errors import InvalidArgument, NotFound
from service_kit.settings import Secret
from tests.identity.identity_helpers import FakeClock, opening

SECRET = "whsec-test-only"


@dataclass
class Platform:
    """The platform's webhook endpoint: answers 500 to the first `failures` requests, then 204; keeps every one."""

    failures: int = 0
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def platform() -> Iterator[Platform]:
    state = Platform()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 500 if len(state.received) < state.failures else 204
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/reminders"
    yield state
    server.shutdown()
    server.server_close()


def deliverer(services: IdentityServices, platform: Platform, sms_file: Path) -> Deliverer:
    return Deliverer(services.accounts, {"alipay": Webhook(platform.url, Secret(SECRET))}, FileSms(sms_file))


def expiring(account: str, key: str = "") -> Notice:
    return Notice(
        notice_key=key or f"expiring:{account}:2026-04-14:30",
        account_number=account,
        kind=ReminderKind.EXPIRING_SOON,
        points=120,
        expires_on=date(2026, 4, 14),
        period="",
    )


def state_of(services: IdentityServices, key: str, state: DeliveryState) -> list[str]:
    rows, _ = services.reminders.list(state, 0, "")
    return [row.notice_key for row in rows if row.notice_key == key]


def test_a_reminder_is_delivered_once_though_the_webhook_fails_twice(
    services: IdentityServices, clock: FakeClock, platform: Platform, tmp_path: Path
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    notice = expiring(account)
    assert services.reminders.queue([notice]) == [QueueOutcome.QUEUED]
    platform.failures = 2
    sender = deliverer(services, platform, tmp_path / "sms.jsonl")
    assert sender.deliver_due() == 0, "first attempt: 500"
    assert sender.deliver_due() == 0 and len(platform.received) == 1, "not again before its backoff"
    clock.advance(seconds=30)
    assert sender.deliver_due() == 0 and len(platform.received) == 2, "second attempt: 500"
    clock.advance(seconds=59)
    assert sender.deliver_due() == 0 and len(platform.received) == 2, "the wait doubled"
    clock.advance(seconds=1)
    assert sender.deliver_due() == 1
    clock.advance(hours=1)
    assert sender.deliver_due() == 0 and len(platform.received) == 3, "delivered notices are not sent again"
    assert services.reminders.queue([notice]) == [QueueOutcome.DUPLICATE]
    assert state_of(services, notice.notice_key, DeliveryState.DELIVERED) == [notice.notice_key]
    headers, body, status = platform.received[-1]
    assert status == 204 and headers["x-carbon-notice-key"] == notice.notice_key
    signed = headers["x-carbon-timestamp"].encode() + b"." + body
    assert headers["x-carbon-signature"] == "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert json.loads(body) == {
        "notice_key": notice.notice_key, "account_number": account, "kind": "EXPIRING_SOON", "points": 120,
        "expires_on": "2026-04-14", "period": "",
    }  # fmt: skip


def test_a_reminder_goes_to_the_dead_letters_after_its_budget_and_an_operator_retries_it(
    services: IdentityServices, clock: FakeClock, platform: Platform, tmp_path: Path
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    notice = expiring(account)
    services.reminders.queue([notice])
    platform.failures = 1_000
    sender = deliverer(services, platform, tmp_path / "sms.jsonl")
    for _ in range(RETRY_BUDGET):
        sender.deliver_due()
        clock.advance(hours=7)
    assert len(platform.received) == RETRY_BUDGET
    (dead,) = services.reminders.list(DeliveryState.DEAD, 0, "")[0]
    assert (dead.notice_key, dead.attempts, dead.last_error) == (
        notice.notice_key,
        RETRY_BUDGET,
        "alipay webhook answered 500",
    )
    assert sender.deliver_due() == 0 and len(platform.received) == RETRY_BUDGET, "dead letters wait for an operator"
    platform.failures = 0
    retried = services.reminders.retry(notice.notice_key)
    assert (retried.state, retried.attempts) == (DeliveryState.PENDING.value, 0)
    assert sender.deliver_due() == 1
    assert services.reminders.retry(notice.notice_key).state == DeliveryState.DELIVERED.value, "only DEAD is reset"
    with pytest.raises(NotFound):
        services.reminders.retry("no-such-notice")


def test_no_reminder_is_sent_once_the_resident_switched_them_off(
    services: IdentityServices, platform: Platform, tmp_path: Path
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    assert services.reminders.set_preference(account, True) is True
    assert services.reminders.queue([expiring(account)]) == [QueueOutcome.OPTED_OUT]
    assert deliverer(services, platform, tmp_path / "sms.jsonl").deliver_due() == 0
    assert platform.received == []
    assert state_of(services, expiring(account).notice_key, DeliveryState.SKIPPED) == [expiring(account).notice_key]
    services.reminders.set_preference(account, False)
    assert services.reminders.queue([expiring(account, "digest:again")]) == [QueueOutcome.QUEUED]


def test_a_counter_account_is_reminded_by_sms_in_the_embedded_file(
    services: IdentityServices, platform: Platform, tmp_path: Path
) -> None:
    counter = opening(channel=Channel.COMMUNITY_CENTRE, centre="centre-1", staff="staff-1", phone="13900001111")
    account = services.accounts.open_account(counter)[0].account_number
    digest = Notice(f"digest:{account}:2026-02", account, ReminderKind.MONTHLY_DIGEST, 300, None, "2026-02")
    assert services.reminders.queue([digest]) == [QueueOutcome.QUEUED]
    sms_file = tmp_path / "sms.jsonl"
    assert deliverer(services, platform, sms_file).deliver_due() == 1
    (line,) = [json.loads(text) for text in sms_file.read_text(encoding="utf-8").splitlines()]
    assert line["phone_number"] == "13900001111" and line["notice_key"] == digest.notice_key
    assert "300" in line["text"] and "2026-02" in line["text"]
    assert platform.received == []


def test_queueing_names_a_bad_notice_and_records_unknown_accounts_without_a_route(
    services: IdentityServices,
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    for bad, name in (
        (expiring(account, "x" * 129), "notices[0].notice_key"),
        (expiring("12345"), "notices[0].account_number"),
        (Notice("k", account, ReminderKind.EXPIRING_SOON, -1, None, ""), "notices[0].points"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            services.reminders.queue([bad])
        assert caught.value.field == name
    with pytest.raises(InvalidArgument) as caught:
        services.reminders.queue([])
    assert caught.value.field == "notices"
    unknown = new_account_number("330000")  # well formed, never opened here
    assert services.reminders.queue([expiring(unknown)]) == [QueueOutcome.NO_ROUTE]


def test_delivered_notices_are_pruned_after_the_window_and_their_horizon_and_never_queued_again(
    services: IdentityServices, clock: FakeClock, platform: Platform, tmp_path: Path
) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    sender = deliverer(services, platform, tmp_path / "sms.jsonl")
    dead = expiring(account, key=f"expiring:{account}:2026-04-14:7")
    services.reminders.queue([dead])
    platform.failures = 1_000
    for _ in range(RETRY_BUDGET):
        sender.deliver_due()
        clock.advance(hours=7)
    platform.failures = 0
    delivered = expiring(account)
    later = Notice(f"expiring:{account}:2026-12-31:30", account, ReminderKind.EXPIRING_SOON, 9, date(2026, 12, 31), "")
    assert services.reminders.queue([delivered, later]) == [QueueOutcome.QUEUED] * 2
    assert sender.deliver_due() == 2
    pending = Notice(f"expiring:{account}:2026-09-01:30", account, ReminderKind.EXPIRING_SOON, 3, date(2026, 9, 1), "")
    services.reminders.queue([pending])

    clock.advance(days=RETENTION_DAYS - 1)
    assert sender.prune_finished() == 0, "kept for the window"
    clock.advance(days=2)
    assert sender.prune_finished() == 1, "delivered beyond the window, its expiry day passed"

    assert state_of(services, delivered.notice_key, DeliveryState.DELIVERED) == []
    assert state_of(services, later.notice_key, DeliveryState.DELIVERED) == [later.notice_key], "horizon not passed"
    assert state_of(services, dead.notice_key, DeliveryState.DEAD) == [dead.notice_key], "kept for an operator"
    assert state_of(services, pending.notice_key, DeliveryState.PENDING) == [pending.notice_key]
    assert services.reminders.queue([delivered]) == [QueueOutcome.DUPLICATE], "a late copy is not queued"
    assert state_of(services, delivered.notice_key, DeliveryState.PENDING) == []
    assert sender.prune_finished() == 0


def test_a_digest_is_past_its_horizon_once_the_month_after_its_period_has_ended() -> None:
    digest = Notice("digest:x:2026-01", "x", ReminderKind.MONTHLY_DIGEST, 5, None, "2026-01")
    assert not past_horizon(digest, horizon_on(date(2026, 2, 28)))
    assert past_horizon(digest, horizon_on(date(2026, 3, 1)))
    expiring_soon = Notice("expiring:x", "x", ReminderKind.EXPIRING_SOON, 5, date(2026, 4, 14), "")
    assert not past_horizon(expiring_soon, horizon_on(date(2026, 4, 14)))
    assert past_horizon(expiring_soon, horizon_on(date(2026, 4, 15)))
