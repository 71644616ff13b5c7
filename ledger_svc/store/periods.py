"""Settlement periods in SQL: the closed months, and the sums of the journal entries a month's selection names.

An entry's block is its batch's block_no (journal_batches); a batch not chained yet has none and counts as above
every bound. Portable statements, the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, not_, select

from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.periods import ClosedPeriod, EntrySum, Selection
from ledger_svc.domain.summary import EarnGroup
from ledger_svc.store.tables import chain_head, closed_periods, journal_batches, transfers
from service_kit.accounts import SYSTEM_PREFIX

EPOCH_DAY = date(1970, 1, 1)
US_PER_DAY = 86_400 * 1_000_000
US_TO_CHINA = 8 * 3_600 * 1_000_000  # China Standard Time is UTC+8 all year
# Above any block number: what an entry not chained yet compares as.
_UNCHAINED = 2**62


def closed(conn: Connection) -> dict[str, ClosedPeriod]:
    """Every closed month (a dozen rows a year)."""
    rows = conn.execute(select(closed_periods.c.period, closed_periods.c.last_block_no, closed_periods.c.closed_at_us))
    return {row.period: ClosedPeriod(row.period, int(row.last_block_no), int(row.closed_at_us)) for row in rows}


def stored_figures(conn: Connection, period: str) -> str | None:
    return conn.execute(select(closed_periods.c.figures_json).where(closed_periods.c.period == period)).scalar()


def record_close(conn: Connection, period: str, last_block_no: int, closed_at_us: int, figures_json: str) -> None:
    """Inserts the month's row; a second close of the month violates the primary key."""
    conn.execute(
        insert(closed_periods).values(
            period=period, last_block_no=last_block_no, closed_at_us=closed_at_us, figures_json=figures_json
        )
    )


def last_block_no(conn: Connection) -> int:
    """The journal's last chained block (0 before the first)."""
    return int(conn.execute(select(chain_head.c.last_block_no).where(chain_head.c.id == 1)).scalar() or 0)


def _where(chosen: Selection) -> list[Any]:
    block = func.coalesce(journal_batches.c.block_no, _UNCHAINED)
    conditions: list[Any] = [
        transfers.c.posted_at_us >= chosen.posted_from_us,
        transfers.c.posted_at_us < chosen.posted_before_us,
    ]
    if chosen.up_to_block is not None:
        conditions.append(block <= chosen.up_to_block)
    if chosen.taken_before_us is not None and chosen.taken_up_to_block is not None:
        conditions.append(
            not_(and_(transfers.c.posted_at_us < chosen.taken_before_us, block <= chosen.taken_up_to_block))
        )
    return conditions


def _joined() -> Any:
    return transfers.join(journal_batches, journal_batches.c.batch_id == transfers.c.batch_id)


def entry_sums(conn: Connection, chosen: Selection) -> list[EntrySum]:
    """The selected entries summed by code, by which sides are user accounts, by lateness and by posting day."""
    to_user = case((transfers.c.credit_account.startswith(SYSTEM_PREFIX), 0), else_=1).label("to_user")
    from_user = case((transfers.c.debit_account.startswith(SYSTEM_PREFIX), 0), else_=1).label("from_user")
    late = case((transfers.c.posted_at_us < chosen.late_before_us, 1), else_=0).label("late")
    # The China day as a day number since 1970-01-01: integer division on both databases.
    day = ((transfers.c.posted_at_us + US_TO_CHINA) // US_PER_DAY).label("day")
    query = (
        select(
            transfers.c.code,
            to_user,
            from_user,
            late,
            day,
            func.count().label("entries"),
            func.sum(transfers.c.amount_points).label("points"),
            func.sum(transfers.c.co2e_grams).label("co2e"),
        )
        .select_from(_joined())
        .where(*_where(chosen))
        .group_by(transfers.c.code, to_user, from_user, late, day)
    )
    return [
        EntrySum(int(r.code), bool(r.to_user), bool(r.from_user), bool(r.late), int(r.entries), int(r.points),
                 int(r.co2e), EPOCH_DAY + timedelta(days=int(r.day)))
        for r in conn.execute(query)
    ]  # fmt: skip


def earn_groups(conn: Connection, chosen: Selection) -> list[EarnGroup]:
    """The selected EARN credits to user accounts, grouped by their metadata (which names the behaviour)."""
    query = (
        select(
            transfers.c.metadata_json,
            func.count().label("entries"),
            func.sum(transfers.c.amount_points).label("points"),
            func.sum(transfers.c.co2e_grams).label("co2e"),
        )
        .select_from(_joined())
        .where(
            *_where(chosen),
            transfers.c.code == int(TransferCode.EARN),
            not_(transfers.c.credit_account.startswith(SYSTEM_PREFIX)),
        )
        .group_by(transfers.c.metadata_json)
    )
    return [EarnGroup(str(r.metadata_json), int(r.entries), int(r.points), int(r.co2e)) for r in conn.execute(query)]
