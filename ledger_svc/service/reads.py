"""Read use cases: GetBalance, ListStatementEntries, ListLots, ListExpiringPoints, GetMonthlySummary. A read of
several statements that must agree runs in one snapshot (`one_snapshot`); the statement's walk runs without a
transaction (docs/adr/0029-reads-keep-their-prepared-statements.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger_svc.domain.balance import EXPIRING_SOON_US, BalanceView, LotView, balance_from_sums, expiring_by_day
from ledger_svc.domain.jobs import month_bounds_us
from ledger_svc.domain.names import VALID_CODES, account_problem
from ledger_svc.domain.summary import MonthlySummary, summarise
from ledger_svc.domain.time import US_PER_DAY, day_of
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import reads, statement
from ledger_svc.store.statement import StatementRow
from service_kit import paging
from service_kit.accounts import is_system_account
from service_kit.db import one_snapshot, one_statement_transaction
from service_kit.errors import InvalidArgument

MAX_EXPIRING_WINDOW_US = 3 * 366 * US_PER_DAY


def _check_account(account: str, ctx: LedgerContext) -> None:
    problem = account_problem(account, ctx.region_code)
    if problem:
        raise InvalidArgument("account", problem, reason="INVALID_ACCOUNT")


def get_balance(ctx: LedgerContext, account: str) -> BalanceView:
    _check_account(account, ctx)
    now_us = ctx.now_us()
    # One statement, so one snapshot with no transaction around it: a spend committed between two snapshots would
    # show its debit in one figure and not in the other (ADR 0029).
    with one_statement_transaction(ctx.engine) as conn:
        if is_system_account(account):
            points = reads.system_balance(conn, account)
            return BalanceView(
                available_points=points, held_points=0, total_points=points, expiring_within_30_days_points=0
            )
        # The maintained sums, the live holds and only the lots expiring within 30 days (ADR 0117): a balance
        # costs a few index reads however long the account's history.
        sums = reads.balance_sums(conn, account, now_us, now_us + EXPIRING_SOON_US)
    return balance_from_sums(sums.balance_points, sums.live_held_points, sums.expired_points, sums.expiring_points)


@dataclass(frozen=True)
class StatementPage:
    entries: list[StatementRow]
    next_page_token: str


def list_statement_entries(
    ctx: LedgerContext, account: str, page_size: int, page_token: str, codes: list[int], start_us: int, end_us: int
) -> StatementPage:
    _check_account(account, ctx)
    size = paging.page_size(page_size)
    before_seq = paging.decode_int(page_token, "statement")
    for code in codes:
        if code not in VALID_CODES:
            raise InvalidArgument("codes", f"{code} is not a known transfer code", reason="INVALID_CODE")
    if start_us and end_us and end_us <= start_us:
        raise InvalidArgument("end_time", "must be after start_time")
    # The walk's statements read disjoint seq ranges, and in a transaction at READ COMMITTED each took its own
    # snapshot anyway: without one a page pays no BEGIN and no ROLLBACK, and keeps its prepared plans (ADR 0029).
    with one_statement_transaction(ctx.engine) as conn:
        read = statement.statement(conn, account, size + 1, before_seq, codes, start_us, end_us)
    rows = read.rows[:size]
    # A token resumes before the page's last entry, or, when the walk stopped at its bucket budget before the page
    # was full, where the walk stopped: such a page may be short, even empty (AIP-158; ADR 0136).
    if len(read.rows) > size:
        return StatementPage(rows, paging.encode_token("statement", rows[-1].seq))
    if read.unread_before_seq is not None:
        return StatementPage(rows, paging.encode_token("statement", read.unread_before_seq))
    return StatementPage(rows, "")


@dataclass(frozen=True)
class LotPage:
    lots: list[LotView]
    next_page_token: str


def list_lots(ctx: LedgerContext, account: str, page_size: int, page_token: str, include_empty: bool) -> LotPage:
    _check_account(account, ctx)
    if is_system_account(account):
        raise InvalidArgument("account", "system accounts hold no lots")
    size = paging.page_size(page_size)
    offset = paging.decode_int(page_token, "lots") or 0
    with one_snapshot(ctx.engine) as conn:
        views = reads.lot_views(conn, account, ctx.now_us(), include_empty)
    page = views[offset : offset + size]
    more = offset + size < len(views)
    return LotPage(page, paging.encode_token("lots", offset + size) if more else "")


def list_expiring_points(ctx: LedgerContext, account: str, within_us: int) -> list[tuple[date, int]]:
    _check_account(account, ctx)
    if not 0 <= within_us <= MAX_EXPIRING_WINDOW_US:
        raise InvalidArgument("within", "must be between 0 (30 days) and 3 years")
    now_us = ctx.now_us()
    if is_system_account(account):
        return []
    window_us = within_us or 30 * US_PER_DAY
    with one_snapshot(ctx.engine) as conn:
        views = reads.lot_views(conn, account, now_us, expiring_by_us=now_us + window_us)
    return expiring_by_day(views, now_us, window_us)


# "Points expiring in the next 3 months": 92 days covers any three calendar months.
SUMMARY_EXPIRING_WINDOW_US = 92 * US_PER_DAY


def get_monthly_summary(ctx: LedgerContext, account: str, year: int, month: int) -> MonthlySummary:
    """The account's month (China time) summed from its journal entries, as its statement for the month would sum,
    with the points expiring in the next three months from now. Not a month after the current one."""
    _check_account(account, ctx)
    if is_system_account(account):
        raise InvalidArgument("account", "a user account: system accounts have no monthly summary")
    if not 2000 <= year <= 9999:
        raise InvalidArgument("year", "must be 2000-9999")
    if not 1 <= month <= 12:
        raise InvalidArgument("month", "must be 1-12")
    now_us = ctx.now_us()
    if (year, month) > (day_of(now_us).year, day_of(now_us).month):
        raise InvalidArgument("month", "must not be after the current month")
    start_us, end_us = month_bounds_us(f"{year:04d}-{month:02d}")
    with one_snapshot(ctx.engine) as conn:
        sums = reads.month_sums(conn, account, start_us, end_us)
        earns = reads.month_earns(conn, account, start_us, end_us)
        views = reads.lot_views(conn, account, now_us, expiring_by_us=now_us + SUMMARY_EXPIRING_WINDOW_US)
    expiring = expiring_by_day(views, now_us, SUMMARY_EXPIRING_WINDOW_US)
    return summarise(account, date(year, month, 1), sums, earns, expiring)
