"""Reminder use cases (ADR 0113): the resident's preference, queueing notices into the outbox with their route, and
the dead-letter list operators look at and retry from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from identity_svc import store
from identity_svc.domain.accounts import AccountState, unknown_account, validate_account_number
from identity_svc.domain.reminders import (
    DeliveryState,
    Notice,
    QueueOutcome,
    horizon_on,
    past_horizon,
    route_for,
    validate_batch,
)
from identity_svc.service.accounts import AccountService
from service_kit import paging
from service_kit.clock import china_day
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound

LIST_KIND = "reminder-deliveries"


class ReminderService:
    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts
        self._engine = accounts.engine

    def _now_us(self) -> int:
        return int(self._accounts.clock().timestamp() * 1_000_000)

    def set_preference(self, account_number: str, reminders_off: bool) -> bool:
        validate_account_number(account_number)
        with self._engine.begin() as conn:
            row = store.accounts.account(conn, account_number)
            if row is None:
                raise unknown_account()
            if row.state != AccountState.OPEN:
                raise FailedPrecondition("ACCOUNT_CLOSED", "the account is closed")
            store.reminders.set_preference(conn, account_number, reminders_off, self._now_us())
        return reminders_off

    def queue(self, notices: list[Notice]) -> list[QueueOutcome]:
        """Each notice into the outbox once, PENDING with its route, or SKIPPED (reminders off, no route); a notice
        past its horizon is not queued and is answered DUPLICATE (the outbox forgets delivered notices after a while,
        so a late copy of one must not be sent again)."""
        notices = validate_batch(notices)
        now_us = self._now_us()
        horizon = horizon_on(china_day(self._accounts.clock()))
        numbers = [notice.account_number for notice in notices]
        with self._engine.begin() as conn:
            accounts = store.accounts.accounts_by_numbers(conn, numbers)
            bindings = store.accounts.bindings_of(conn, numbers)
            off = store.reminders.opted_out(conn, numbers)
            rows, outcomes = [], []
            for notice in notices:
                outcome, route = self._route(notice, accounts.get(notice.account_number), bindings, off)
                outcomes.append(outcome)
                if not past_horizon(notice, horizon):  # else answered DUPLICATE: it may have been sent and pruned
                    rows.append(_outbox_row(notice, outcome, route, now_us))
            inserted = store.reminders.queue(conn, rows)
        return [
            o if n.notice_key in inserted else QueueOutcome.DUPLICATE for n, o in zip(notices, outcomes, strict=True)
        ]

    def _route(
        self, notice: Notice, row: Row[Any] | None, bindings: dict[str, list[Any]], off: set[str]
    ) -> tuple[QueueOutcome, str]:
        if notice.account_number in off:
            return QueueOutcome.OPTED_OUT, ""
        if row is None or row.state != AccountState.OPEN:
            return QueueOutcome.NO_ROUTE, ""
        platforms = [binding.platform for binding in bindings.get(notice.account_number, [])]
        route = route_for(platforms, bool(self._accounts.record(row).get("phone_number")))
        return (QueueOutcome.QUEUED, route) if route else (QueueOutcome.NO_ROUTE, "")

    def list(self, state: DeliveryState | None, size: int, token: str) -> tuple[Sequence[Row[Any]], str]:
        if state is None:
            raise InvalidArgument("state", "must be PENDING, DELIVERED, DEAD or SKIPPED")
        limit = paging.page_size(size)
        cursor = paging.decode_token(token, LIST_KIND, int, str)
        after = (int(cursor[0]), str(cursor[1])) if cursor else None
        with self._engine.connect() as conn:
            rows = store.reminders.page(conn, state, after, limit + 1)
        if len(rows) <= limit:
            return rows, ""
        last = rows[limit - 1]
        return rows[:limit], paging.encode_token(LIST_KIND, int(last.queued_at_us), str(last.notice_key))

    def retry(self, notice_key: str) -> Row[Any]:
        """A DEAD reminder PENDING again with a fresh retry budget; any other as it is."""
        if not notice_key:
            raise InvalidArgument("notice_key", "must not be empty")
        with self._engine.begin() as conn:
            row = store.reminders.one(conn, notice_key)
            if row is None:
                raise NotFound("REMINDER_NOT_FOUND", f"no reminder {notice_key!r}", {"notice_key": notice_key})
            if row.state == DeliveryState.DEAD.value:
                store.reminders.record_attempt(
                    conn, notice_key, state=DeliveryState.PENDING.value, attempts=0, next_attempt_at_us=0
                )
                row = store.reminders.one(conn, notice_key)
        assert row is not None
        return row


def _outbox_row(notice: Notice, outcome: QueueOutcome, route: str, now_us: int) -> dict[str, Any]:
    state = DeliveryState.PENDING if outcome == QueueOutcome.QUEUED else DeliveryState.SKIPPED
    error = "" if outcome == QueueOutcome.QUEUED else outcome.name
    return {
        "notice_key": notice.notice_key, "account_number": notice.account_number, "kind": int(notice.kind),
        "points": notice.points, "expires_on": notice.expires_on.isoformat() if notice.expires_on else "",
        "period": notice.period, "state": state.value, "route": route, "attempts": 0, "next_attempt_at_us": now_us,
        "last_error": error, "queued_at_us": now_us, "delivered_at_us": 0,
    }  # fmt: skip
