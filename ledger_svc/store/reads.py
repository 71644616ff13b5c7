"""Read models: lots as readers see them, balances, system balances, conservation sums, monthly sums (the statement
is store/statement.py)."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, CompoundSelect, Connection, Select, Table, and_, bindparam, func, select, union_all

from ledger_svc.domain.balance import LotView
from ledger_svc.domain.conservation import ConservationSums
from ledger_svc.domain.holds import HoldState
from ledger_svc.domain.lots import LotKey
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.summary import CodeSum, EarnGroup
from ledger_svc.store import statement
from ledger_svc.store.tables import (
    EXPIRY_LEFT_OUT,
    ISSUANCE_LEFT_OUT,
    LOT_COLUMNS,
    accounts,
    every_lot,
    hold_lots,
    holds,
    in_both,
    system_balances,
    transfers,
)
from service_kit.accounts import EXPIRY_ACCOUNT, ISSUANCE_ACCOUNT


def lot_views(
    conn: Connection,
    account: str,
    now_us: int,
    include_empty: bool = False,
    expiring_by_us: int | None = None,
) -> list[LotView]:
    """The account's lots, FIFO order; points of timed-out, unswept holds count as back in their lots. With
    `expiring_by_us`, only lots that expire by then: a range of the (account, expires_at_us, ...) key, so a
    reader that wants the soon-expiring lots reads those, not the account's whole history."""
    returned: dict[int, int] = defaultdict(int)
    values = {"account": account, "now_us": now_us, "expiring_by_us": expiring_by_us}
    for row in conn.execute(_timed_out_hold_lots(), values):
        returned[row.lot_id] = int(row.points)
    query = _lots_of_account(expiring_by_us is not None, not include_empty and not returned)
    views = []
    for row in conn.execute(query, values):
        remaining = row.remaining_points + returned.get(row.lot_id, 0)
        if remaining > 0 or include_empty:
            key = LotKey(row.account, row.expires_at_us, row.earned_on)
            views.append(
                LotView(lot_id=row.lot_id, key=key, credited_points=row.credited_points, remaining_points=remaining)
            )
    views.sort(key=lambda view: (view.key, view.lot_id))
    return views


# The balance's queries are built once and run with their values: building them per call cost SQLAlchemy more Python
# than PostgreSQL spends answering them (a balance is a primary-key read and two short index ranges).
_ACCOUNT = bindparam("account", type_=holds.c.account.type)
_NOW_US = bindparam("now_us", type_=BigInteger())


@functools.cache
def _timed_out_hold_lots() -> Select[tuple[Any, ...]]:
    return (
        select(hold_lots.c.lot_id, func.sum(hold_lots.c.amount_points).label("points"))
        .join(holds, holds.c.hold_id == hold_lots.c.hold_id)
        .where(holds.c.account == _ACCOUNT, holds.c.state == int(HoldState.PENDING), holds.c.expires_at_us <= _NOW_US)
        .group_by(hold_lots.c.lot_id)
    )


@functools.cache
def _lots_of_account(expiring: bool, non_empty: bool) -> CompoundSelect[tuple[Any, ...]]:
    def of_account(table: Table) -> Select[tuple[Any, ...]]:
        query = select(*[table.c[name] for name in LOT_COLUMNS]).where(table.c.account == _ACCOUNT)
        if expiring:
            query = query.where(table.c.expires_at_us <= bindparam("expiring_by_us", type_=BigInteger()))
        if non_empty:
            query = query.where(table.c.remaining_points > 0)
        return query

    return in_both(of_account)  # the account's lots in both tables (ADR 0137)


@dataclass(frozen=True)
class BalanceSums:
    balance_points: int  # maintained: points in lots + pending holds (timed-out ones too, until swept)
    live_held_points: int  # pending holds that have not timed out
    expired_points: int  # in lots expired by now but not swept yet (timed-out holds' points back in them)
    expiring_points: int  # in lots expiring after now and by `soon_us` (likewise)


def balance_sums(conn: Connection, account: str, now_us: int, soon_us: int) -> BalanceSums:
    """What a balance needs, in one statement, so one snapshot without a transaction (ADR 0029): the maintained sum,
    the live holds, and the points of the account's lots that expire by `soon_us` in both lot tables, split at now,
    with the points of timed-out, unswept holds counted back in their lots (as `lot_views` does). A few index
    ranges however long the account's history (ADR 0117)."""
    row = conn.execute(_balance_sums(), {"account": account, "now_us": now_us, "soon_us": soon_us}).one()
    return BalanceSums(int(row.balance or 0), int(row.live or 0), int(row.expired or 0), int(row.expiring or 0))


@functools.cache
def _balance_sums() -> Select[tuple[Any, ...]]:
    soon_us = bindparam("soon_us", type_=BigInteger())

    def expiring_by_soon(table: Table) -> Select[tuple[Any, ...]]:
        return select(table.c.lot_id, table.c.expires_at_us, table.c.remaining_points).where(
            table.c.account == _ACCOUNT, table.c.expires_at_us <= soon_us
        )

    soon = in_both(expiring_by_soon).subquery("soon")
    returned = _timed_out_hold_lots().subquery("returned")
    points = soon.c.remaining_points + func.coalesce(returned.c.points, 0)
    lots_by_soon = select(
        func.sum(points).filter(soon.c.expires_at_us <= _NOW_US).label("expired"),
        func.sum(points).filter(soon.c.expires_at_us > _NOW_US).label("expiring"),
    ).select_from(soon.outerjoin(returned, returned.c.lot_id == soon.c.lot_id))
    pending = and_(holds.c.account == _ACCOUNT, holds.c.state == int(HoldState.PENDING))
    lots_subquery = lots_by_soon.subquery("lot_sums")
    return select(
        select(accounts.c.balance_points).where(accounts.c.account == _ACCOUNT).scalar_subquery().label("balance"),
        select(func.sum(holds.c.amount_points))
        .where(pending, holds.c.expires_at_us > _NOW_US)
        .scalar_subquery()
        .label("live"),
        lots_subquery.c.expired,
        lots_subquery.c.expiring,
    ).select_from(lots_subquery)


def live_held_points(conn: Connection, account: str, now_us: int) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.sum(holds.c.amount_points), 0)).where(
                holds.c.account == account, holds.c.state == int(HoldState.PENDING), holds.c.expires_at_us > now_us
            )
        ).scalar_one()
    )


def system_balance(conn: Connection, account: str) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.sum(system_balances.c.balance_points), 0)).where(
                system_balances.c.account == account
            )
        ).scalar_one()
    )


def conservation_sums(conn: Connection) -> ConservationSums:
    """The full audit's sums: every lot, and every account against its journal entries."""
    books = book_totals(conn)
    lot_total = conn.execute(select(func.coalesce(func.sum(every_lot.c.remaining_points), 0))).scalar_one()
    return books.sums(lot_points=int(lot_total), journal_mismatches=_journal_mismatches(conn))


@dataclass(frozen=True)
class BookTotals:
    """What both depths of the conservation check count alike: balances and pending holds."""

    user_balances_points: int
    user_held_points: int
    system_balances: dict[str, int]
    pending_hold_points: int
    pending_hold_lot_points: int

    def sums(self, lot_points: int | None, journal_mismatches: int) -> ConservationSums:
        return ConservationSums(
            user_balances_points=self.user_balances_points,
            user_held_points=self.user_held_points,
            system_balances=self.system_balances,
            lot_points=lot_points,
            pending_hold_points=self.pending_hold_points,
            pending_hold_lot_points=self.pending_hold_lot_points,
            journal_mismatches=journal_mismatches,
        )


def book_totals(conn: Connection) -> BookTotals:
    user_total, held_total = conn.execute(
        select(
            func.coalesce(func.sum(accounts.c.balance_points), 0), func.coalesce(func.sum(accounts.c.held_points), 0)
        )
    ).one()
    system = {
        row.account: int(row.points)
        for row in conn.execute(
            select(system_balances.c.account, func.sum(system_balances.c.balance_points).label("points")).group_by(
                system_balances.c.account
            )
        )
    }
    pending = holds.c.state == int(HoldState.PENDING)
    hold_total = conn.execute(select(func.coalesce(func.sum(holds.c.amount_points), 0)).where(pending)).scalar_one()
    hold_lot_total = conn.execute(
        select(func.coalesce(func.sum(hold_lots.c.amount_points), 0))
        .join(holds, holds.c.hold_id == hold_lots.c.hold_id)
        .where(pending)
    ).scalar_one()
    return BookTotals(int(user_total), int(held_total), system, int(hold_total), int(hold_lot_total))


def _journal_mismatches(conn: Connection) -> int:
    """Accounts whose balance differs from the sum of their journal entries (credits minus debits), counted by the
    database in one statement: each entry and each balance (negated) summed per account, the non-zero sums counted.
    The ledger process holds no per-account map, so answering costs it no memory however many accounts there are
    (it grew by ~200 MB at 500k accounts, issue 19)."""
    nets = union_all(
        select(transfers.c.credit_account.label("account"), transfers.c.amount_points.label("points")),
        select(transfers.c.debit_account, -transfers.c.amount_points),
        select(accounts.c.account, -accounts.c.balance_points),
        select(system_balances.c.account, -system_balances.c.balance_points),
    ).subquery("nets")
    differing = select(nets.c.account).group_by(nets.c.account).having(func.sum(nets.c.points) != 0).subquery()
    return int(conn.execute(select(func.count()).select_from(differing)).scalar_one())


def month_sums(conn: Connection, account: str, start_us: int, end_us: int) -> list[CodeSum]:
    """The account's entries posted in [start_us, end_us), summed by code and side (the statement's rows)."""
    in_month = and_(transfers.c.posted_at_us >= start_us, transfers.c.posted_at_us < end_us)
    sums = []
    columns = (
        transfers.c.code,
        func.count().label("entries"),
        func.sum(transfers.c.amount_points).label("points"),
        func.sum(transfers.c.co2e_grams).label("co2e"),
    )
    credits = _credits_of(conn, account, select(*columns).where(in_month).group_by(transfers.c.code))
    debits = select(*columns).where(_debits_of(account), in_month).group_by(transfers.c.code)
    for incoming, query in ((True, credits), (False, debits)):
        if query is None:
            continue
        for row in conn.execute(query):
            sums.append(CodeSum(int(row.code), incoming, int(row.entries), int(row.points), int(row.co2e)))
    return sums


def month_earns(conn: Connection, account: str, start_us: int, end_us: int) -> list[EarnGroup]:
    """The account's earn credits posted in [start_us, end_us), grouped by their metadata (partner, behaviour)."""
    grouped = (
        select(
            transfers.c.metadata_json,
            func.count().label("entries"),
            func.sum(transfers.c.amount_points).label("points"),
            func.sum(transfers.c.co2e_grams).label("co2e"),
        )
        .where(
            transfers.c.code == int(TransferCode.EARN),
            transfers.c.posted_at_us >= start_us,
            transfers.c.posted_at_us < end_us,
        )
        .group_by(transfers.c.metadata_json)
    )
    query = _credits_of(conn, account, grouped)
    if query is None:
        return []
    return [EarnGroup(str(r.metadata_json), int(r.entries), int(r.points), int(r.co2e)) for r in conn.execute(query)]


def _debits_of(account: str) -> Any:
    debits = transfers.c.debit_account == account
    # As in the statement: said so the planner may use ix_transfers_debit, which leaves issuance out (ADR 0105).
    return and_(debits, ISSUANCE_LEFT_OUT) if account != ISSUANCE_ACCOUNT else debits


def _credits_of(conn: Connection, account: str, query: Select[Any]) -> Select[Any] | None:
    """`query` over the account's credits, every bucket of ix_transfers_credit from its first entry's to the newest
    (one index descent each, ADR 0136); None for an account with no entry. A sum needs them all: no budget here."""
    span = statement.entry_span(conn, account)
    if span is None:
        return None
    buckets = statement.bucket_walk(*span)
    credits = transfers.c.credit_account == account
    # Said so the planner may use ix_transfers_credit, which leaves system:expiry out (ADR 0130).
    if account != EXPIRY_ACCOUNT:
        credits = and_(credits, EXPIRY_LEFT_OUT)
    return query.select_from(buckets.join(transfers, statement.seq_bucket == buckets.c.bucket)).where(credits)
