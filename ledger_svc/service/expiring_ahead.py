"""GetExpiringAhead: the region's points that will expire in each of the coming months unless spent, from its lots.

Read from the lots when asked (an index range over the expiring index), not kept as counters: spending, expiry and
transfers change lots all the time, and the lots are the truth (ADR 0112).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger_svc.domain.jobs import month_bounds_us
from ledger_svc.domain.periods import month_key, next_month
from ledger_svc.domain.time import day_of
from ledger_svc.service.context import LedgerContext
from ledger_svc.store.expiring_ahead import points_by_expiry
from service_kit.db import one_snapshot
from service_kit.errors import InvalidArgument

DEFAULT_MONTHS = 12
MAX_MONTHS = 36


@dataclass(frozen=True)
class ExpiringMonth:
    period: str  # "2026-12"
    amount_points: int
    lots: int


def expiring_ahead(ctx: LedgerContext, months_ahead: int) -> list[ExpiringMonth]:
    if not 0 <= months_ahead <= MAX_MONTHS:
        raise InvalidArgument("months_ahead", f"must be 0 (default {DEFAULT_MONTHS}) to {MAX_MONTHS}")
    now_us = ctx.now_us()
    today = day_of(now_us)
    periods = [month_key(today.year, today.month)]
    for _ in range((months_ahead or DEFAULT_MONTHS) - 1):
        periods.append(next_month(periods[-1]))
    before_us = month_bounds_us(periods[-1])[1]
    with one_snapshot(ctx.engine) as conn:  # ends in COMMIT: the connection keeps its prepared statements (ADR 0029)
        rows = points_by_expiry(conn, now_us, before_us)
    totals = {period: [0, 0] for period in periods}
    for expires_at_us, points, lots in rows:
        day = day_of(expires_at_us)
        total = totals[month_key(day.year, day.month)]
        total[0] += points
        total[1] += lots
    return [ExpiringMonth(period, *totals[period]) for period in periods]
