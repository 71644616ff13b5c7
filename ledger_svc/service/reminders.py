"""The day's reminders (ADR 0113): residents with points expiring in 30 and 7 days, and on the 1st every resident
with points for the monthly digest, handed to identity in calls of a few hundred notices. A run resumed after a
crash starts over: identity answers the notices it has DUPLICATE, so nothing is sent twice and the run's count (the
notices newly queued) stays exact but for a batch whose count a crash lost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from functools import partial

from ledger_svc.domain.reminders import NOTICES_PER_CALL, Digest, Expiring, digest_period, expiry_days
from ledger_svc.domain.time import start_of_day_us
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import reminders as store

Notice = Expiring | Digest
# Queues notices in identity; returns how many were new (not DUPLICATE).
ReminderQueue = Callable[[Sequence[Notice]], int]
# Called after each call with (notices sent, notices newly queued); may raise to stop the run (lease lost).
OnBatch = Callable[[int, int], None]


def remind(ctx: LedgerContext, day: date, queue: ReminderQueue, on_batch: OnBatch) -> None:
    for days, expires_on in expiry_days(day):
        _page_through(partial(_expiring, ctx, expires_on, days), queue, on_batch)
    period = digest_period(day)
    if period is not None:
        _page_through(partial(_digests, ctx, period), queue, on_batch)


def _expiring(ctx: LedgerContext, expires_on: date, days: int, after: str) -> list[Notice]:
    start_us, end_us = start_of_day_us(expires_on), start_of_day_us(expires_on + timedelta(days=1))
    with ctx.engine.connect() as conn:
        rows = store.expiring_in(conn, start_us, end_us, after, NOTICES_PER_CALL)
    return [Expiring(account, points, expires_on, days) for account, points in rows]


def _digests(ctx: LedgerContext, period: str, after: str) -> list[Notice]:
    with ctx.engine.connect() as conn:
        rows = store.balances(conn, after, NOTICES_PER_CALL)
    return [Digest(account, points, period) for account, points in rows]


def _page_through(page: Callable[[str], list[Notice]], queue: ReminderQueue, on_batch: OnBatch) -> None:
    after = ""
    while notices := page(after):
        on_batch(len(notices), queue(notices))
        after = notices[-1].account
