"""Settlement periods: closing a month once (the monthly close job), and a month's figures (GetPeriodFigures).

A closed month's figures are computed in the transaction that records the close, from the entries chained up to the
journal's last block then, and stored; they are read back as stored and never recomputed, so later postings cannot
change them (they count in the first open month). recompute_figures sums the same selection again from the journal,
which is how a closed month's report is reproduced and checked (ADR 0110).
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ledger_svc.domain import periods as rules
from ledger_svc.domain.jobs import month_bounds_us
from ledger_svc.domain.periods import PeriodFigures, month_key
from ledger_svc.domain.time import day_of
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import periods as store
from service_kit.errors import FailedPrecondition, InvalidArgument


def period_figures(ctx: LedgerContext, year: int, month: int) -> PeriodFigures:
    """GetPeriodFigures: a closed month as stored at its close; an open one summed from the journal now."""
    if not 2000 <= year <= 9999:
        raise InvalidArgument("year", "must be 2000-9999")
    if not 1 <= month <= 12:
        raise InvalidArgument("month", "must be 1-12")
    today = day_of(ctx.now_us())
    if (year, month) > (today.year, today.month):
        raise InvalidArgument("month", "must not be after the current month")
    period = month_key(year, month)
    with ctx.engine.connect() as conn:
        stored = store.stored_figures(conn, period)
        if stored is not None:
            return PeriodFigures.from_json(stored)
        return _sum(conn, period)


def recompute_figures(ctx: LedgerContext, period: str) -> PeriodFigures:
    """The month's figures summed from the journal again, by the same rule as at its close (for a closed month:
    the entries chained up to its last block), with its close's time and block: equal to the stored figures."""
    with ctx.engine.connect() as conn:
        return _sum(conn, period)


def close_month(ctx: LedgerContext, period: str) -> PeriodFigures:
    """Closes `period` with the journal's current last block (seal first: ctx.seal_everything) and stores its
    figures. Refused when it is closed already (PERIOD_ALREADY_CLOSED) or the month before it is open
    (PERIOD_OUT_OF_ORDER), once closes have begun."""

    def close(conn: Connection) -> PeriodFigures:
        closed = store.closed(conn)
        rules.check_can_close(period, closed)
        last_block = store.last_block_no(conn)
        chosen = rules.selection(period, closed, month_bounds_us, closing_block=last_block)
        figures = rules.figures(
            period, store.entry_sums(conn, chosen), store.earn_groups(conn, chosen), ctx.now_us(), last_block
        )
        store.record_close(conn, period, last_block, figures.closed_at_us, figures.to_json())
        return figures

    try:
        return ctx.transaction(close)
    except IntegrityError:  # another replica recorded the close between our read and our insert
        raise FailedPrecondition("PERIOD_ALREADY_CLOSED", f"{period} is closed already", {"period": period}) from None


def close_through(ctx: LedgerContext, period: str) -> list[PeriodFigures]:
    """The monthly close job's step: every open month up to `period` closed in order (months missed while no
    scheduler ran are closed too, so closed months stay contiguous); nothing when `period` is closed already (a
    resumed run). Before the first close, only `period` itself."""
    with ctx.engine.connect() as conn:
        closed = store.closed(conn)
    if period in closed:
        return []
    months = [period]
    if closed:
        months = []
        month = rules.next_month(max(closed))
        while month <= period:
            months.append(month)
            month = rules.next_month(month)
    return [close_month(ctx, month) for month in months]


def _sum(conn: Connection, period: str) -> PeriodFigures:
    closed = store.closed(conn)
    chosen = rules.selection(period, closed, month_bounds_us)
    own = closed.get(period)
    return rules.figures(
        period,
        store.entry_sums(conn, chosen),
        store.earn_groups(conn, chosen),
        own.closed_at_us if own else 0,
        own.last_block_no if own else 0,
    )
