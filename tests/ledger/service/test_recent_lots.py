"""Recent lots kept apart and moved by account (ADR 0137), on both databases: where credits put a lot, the mover
(idempotent, a rolled-back batch leaves every lot in one place), and every reader and writer of an account's lots
over both tables: spending FIFO, holds, releases, refunds, expiry, ListLots and conservation."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, select, text

from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.jobs import Job, RunState, Schedule
from ledger_svc.domain.time import day_of, lot_expiry_us, to_us
from ledger_svc.service import expiry, hold_batches, holds, lot_mover, reads, refunds, scheduler, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import lot_mover as mover_store
from ledger_svc.store.tables import accounts, lots, recent_lots
from service_kit.db import alembic_config, make_engine, migrate
from tests.ledger.ledger_support import (
    EXPIRY,
    REGION,
    START,
    MovableClock,
    account_number,
    assert_conserved,
    assert_lots_placed,
    earn,
    spend,
)

A = account_number(1)
B = account_number(2)
TODAY = day_of(to_us(START))


def where(ledger: LedgerContext, account: str) -> dict[str, list[tuple[date, int]]]:
    """The account's lots by table: (earned day, remaining points), in key order."""
    found: dict[str, list[tuple[date, int]]] = {}
    with ledger.engine.connect() as conn:
        for table in (lots, recent_lots):
            rows = conn.execute(
                select(table.c.earned_on, table.c.remaining_points)
                .where(table.c.account == account)
                .order_by(table.c.expires_at_us, table.c.earned_on)
            )
            found[table.name] = [(row.earned_on, row.remaining_points) for row in rows]
    return found


def moved_through(ledger: LedgerContext, account: str) -> date:
    with ledger.engine.connect() as conn:
        day: date = conn.execute(
            select(accounts.c.lots_moved_through).where(accounts.c.account == account)
        ).scalar_one()
    return day


def move(ledger: LedgerContext, clock: MovableClock, batch_accounts: int = 1000) -> lot_mover.MoveOutcome:
    """The mover as the scheduler runs it today: every closed day (before yesterday)."""
    through = lot_mover.closed_through(day_of(to_us(clock.now)))
    return lot_mover.move_lots(ledger, through, batch_accounts=batch_accounts)


def days_ago(clock: MovableClock, days: int) -> date:
    return day_of(to_us(clock.now)) - timedelta(days=days)


def test_a_new_accounts_lots_are_recent_until_moved_and_a_late_credit_goes_where_its_day_is(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5)])
    assert where(ledger, A) == {"lots": [], "recent_lots": [(TODAY, 10)]}
    clock.advance(days=2)
    assert move(ledger, clock) == lot_mover.MoveOutcome(2, 2, done=True, resume_after="")
    assert where(ledger, A) == {"lots": [(TODAY, 10)], "recent_lots": []}
    assert moved_through(ledger, A) == TODAY
    # A late credit for the moved day adds to its lot in lots; today's credit makes a recent lot.
    transfers.post_transfers(ledger, [earn("late", A, 1, earned_at=START), earn("e3", A, 3)])
    assert where(ledger, A) == {"lots": [(TODAY, 11)], "recent_lots": [(TODAY + timedelta(days=2), 3)]}
    assert reads.get_balance(ledger, A).available_points == 14
    assert_lots_placed(ledger.engine)
    assert_conserved(ledger)


@pytest.mark.postgres
def test_the_set_based_and_general_credit_paths_route_alike(two_ledgers: tuple[LedgerContext, LedgerContext]) -> None:
    clock = two_ledgers[0].clock
    assert isinstance(clock, MovableClock)
    for n, ledger in enumerate(two_ledgers):
        clock.now = START
        transfers.post_credit_columns(ledger, [earn(f"e{n}", A, 10)])
        transfers.post_transfers(ledger, [earn(f"g{n}", A, 1)])
        clock.advance(days=3)
        move(ledger, clock)
        transfers.post_credit_columns(ledger, [earn(f"late{n}", A, 2, earned_at=START), earn(f"new{n}", A, 4)])
        assert where(ledger, A) == {"lots": [(TODAY, 13)], "recent_lots": [(TODAY + timedelta(days=3), 4)]}
        # Holds on either path take from both tables, and a release gives back to both.
        holds.hold(ledger, HoldRequest(f"h{n}", A, 15))
        hold_batches.hold_batch(ledger, [HoldRequest(f"b{n}", A, 1)])
        assert where(ledger, A) == {"lots": [(TODAY, 0)], "recent_lots": [(TODAY + timedelta(days=3), 1)]}
        holds.release_hold(ledger, f"h{n}")
        hold_batches.release_holds(ledger, [f"b{n}"])
        assert where(ledger, A) == {"lots": [(TODAY, 13)], "recent_lots": [(TODAY + timedelta(days=3), 4)]}
        assert_lots_placed(ledger.engine)
        assert_conserved(ledger)


def test_the_mover_takes_closed_days_only_in_batches_and_a_rerun_moves_nothing(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    names = [account_number(n) for n in range(10, 15)]
    transfers.post_transfers(ledger, [earn(f"e{n}", name, 10) for n, name in enumerate(names)])
    clock.advance(days=1)
    transfers.post_transfers(ledger, [earn(f"y{n}", name, 1) for n, name in enumerate(names)])
    assert move(ledger, clock).lots_moved == 0, "yesterday is not closed: its credits may still come in"
    clock.advance(days=1)
    assert move(ledger, clock, batch_accounts=2) == lot_mover.MoveOutcome(5, 5, done=True, resume_after="")
    assert where(ledger, names[0]) == {"lots": [(TODAY, 10)], "recent_lots": [(TODAY + timedelta(days=1), 1)]}
    assert move(ledger, clock) == lot_mover.MoveOutcome(0, 0, done=True, resume_after="")
    stepped = lot_mover.move_lots(ledger, days_ago(clock, 1), batch_accounts=2, max_batches=1)
    assert (stepped.lots_moved, stepped.done, stepped.resume_after) == (2, False, names[1])
    assert_lots_placed(ledger.engine)
    assert_conserved(ledger)


def test_a_batch_rolled_back_leaves_every_lot_in_one_place_and_a_rerun_finishes(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    names = [account_number(n) for n in range(10, 14)]
    transfers.post_transfers(ledger, [earn(f"e{n}", name, 10 + n) for n, name in enumerate(names)])
    clock.advance(days=2)
    through = days_ago(clock, 2)

    class Killed(Exception):
        pass

    def dies_after_the_copy(conn: Connection) -> None:
        mover_store.move_accounts(conn, names[:2], through)
        raise Killed

    with pytest.raises(Killed):
        ledger.transaction(dies_after_the_copy)
    assert all(where(ledger, name) == {"lots": [], "recent_lots": [(TODAY, 10 + n)]} for n, name in enumerate(names))
    assert moved_through(ledger, names[0]) < TODAY
    assert_lots_placed(ledger.engine)
    # A batch committed, then one lost: the rerun moves what is left, and only that.
    lot_mover.move_lots(ledger, through, batch_accounts=1, max_batches=1)
    assert move(ledger, clock) == lot_mover.MoveOutcome(3, 3, done=True, resume_after="")
    assert all(where(ledger, name) == {"lots": [(TODAY, 10 + n)], "recent_lots": []} for n, name in enumerate(names))
    assert_conserved(ledger)


def test_spending_takes_the_soonest_expiring_lot_first_across_both_tables(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10)])
    clock.advance(days=2)
    move(ledger, clock)
    transfers.post_transfers(ledger, [earn("e2", A, 10)])
    transfers.post_transfers(ledger, [spend("s1", A, 12)])
    later = TODAY + timedelta(days=2)
    assert where(ledger, A) == {"lots": [(TODAY, 0)], "recent_lots": [(later, 8)]}
    # A hold and its commit, a hold and its release, and a batch of holds, all over both tables: a late credit for
    # the moved day refills its lot in lots, which every spend then takes from first.
    transfers.post_transfers(ledger, [earn("e3", A, 5, earned_at=START)])
    holds.hold(ledger, HoldRequest("h1", A, 7))
    assert where(ledger, A) == {"lots": [(TODAY, 0)], "recent_lots": [(later, 6)]}
    holds.commit_hold(ledger, "h1", 4, "system:redemption")
    assert where(ledger, A) == {"lots": [(TODAY, 1)], "recent_lots": [(later, 8)]}
    holds.hold(ledger, HoldRequest("h2", A, 9))
    assert where(ledger, A) == {"lots": [(TODAY, 0)], "recent_lots": [(later, 0)]}
    holds.release_hold(ledger, "h2")
    assert where(ledger, A) == {"lots": [(TODAY, 1)], "recent_lots": [(later, 8)]}
    answers = hold_batches.hold_batch(ledger, [HoldRequest("b1", A, 2), HoldRequest("b2", A, 3)])
    assert len(answers) == 2
    assert where(ledger, A) == {"lots": [(TODAY, 0)], "recent_lots": [(later, 4)]}
    assert reads.get_balance(ledger, A).held_points == 5
    assert_lots_placed(ledger.engine)
    assert_conserved(ledger)


def test_a_refund_restores_points_to_their_lot_in_either_table_and_after_it_moved(
    ledger: LedgerContext, clock: MovableClock
) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10)])
    transfers.post_transfers(ledger, [spend("s1", A, 4), spend("s2", A, 6)])
    refunds.refund_transfer(ledger, "r1", "s1", 0, "voucher failed")
    assert where(ledger, A) == {"lots": [], "recent_lots": [(TODAY, 4)]}
    clock.advance(days=2)
    move(ledger, clock)
    refunds.refund_transfer(ledger, "r2", "s2", 0, "voucher failed")
    assert where(ledger, A) == {"lots": [(TODAY, 10)], "recent_lots": []}
    assert_lots_placed(ledger.engine)
    assert_conserved(ledger)


def test_expiry_sweeps_expired_lots_in_both_tables(ledger: LedgerContext, clock: MovableClock) -> None:
    """A new account's lot of two years ago is recent until moved (its account had moved nothing): swept there."""
    old = START - timedelta(days=725)
    transfers.post_transfers(ledger, [earn("e1", A, 10, earned_at=old), earn("e2", B, 7, earned_at=old)])
    assert where(ledger, A)["recent_lots"] != []
    move(ledger, clock)
    assert where(ledger, A)["lots"] != [] and where(ledger, A)["recent_lots"] == []
    transfers.post_transfers(ledger, [earn("e3", A, 3, earned_at=old + timedelta(days=1)), earn("e4", A, 1)])
    clock.advance(days=10)
    swept = expiry.expire_points(ledger, None, 2, 0)
    assert (swept.lots_expired, swept.points_expired) == (3, 20)
    assert reads.get_balance(ledger, EXPIRY).total_points == 20
    assert reads.get_balance(ledger, A).available_points == 1
    assert_lots_placed(ledger.engine)
    assert_conserved(ledger)


def test_list_lots_and_conservation_read_both_tables(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("b1", B, 2)])
    clock.advance(days=2)
    move(ledger, clock)
    transfers.post_transfers(ledger, [earn("e2", A, 20)])
    page = reads.list_lots(ledger, A, 1, "", False)
    rest = reads.list_lots(ledger, A, 10, page.next_page_token, False)
    assert [(lot.key.earned_on, lot.remaining_points) for lot in page.lots + rest.lots] == [
        (TODAY, 10),
        (TODAY + timedelta(days=2), 20),
    ]
    assert reads.get_balance(ledger, A).available_points == 30
    assert_conserved(ledger)


def test_the_scheduler_moves_closed_days_after_midnight_once_a_day(ledger: LedgerContext, clock: MovableClock) -> None:
    transfers.post_transfers(ledger, [earn("e1", A, 10), earn("e2", B, 5)])
    leader = scheduler.Scheduler(ledger, Schedule(), timedelta(seconds=30), holder="a")
    clock.now = START.replace(hour=16, minute=5) + timedelta(days=1)  # 00:05 China time, two days on
    assert leader.tick() and Job.MOVE_LOTS.value not in _run_states(ledger), "not before 00:10 China time"
    clock.advance(minutes=10)
    assert leader.tick()
    period = (TODAY + timedelta(days=2)).isoformat()
    assert _run_states(ledger)[Job.MOVE_LOTS.value] == {period: (RunState.DONE, 2)}
    assert where(ledger, A) == {"lots": [(TODAY, 10)], "recent_lots": []}
    assert_conserved(ledger)


def _run_states(ledger: LedgerContext) -> dict[str, dict[str, tuple[RunState, int]]]:
    found, _, _ = scheduler.list_job_runs(ledger, "", 0)
    states: dict[str, dict[str, tuple[RunState, int]]] = {}
    for run in found:
        states.setdefault(run.job.value, {})[run.period] = (run.state, run.items)
    return states


def test_upgrading_counts_every_existing_lot_as_moved_and_new_accounts_start_recent(
    database_url: str, clock: MovableClock
) -> None:
    engine = make_engine(database_url)
    config = alembic_config("ledger_svc", engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "ledger_0013")
        conn.commit()
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO accounts (account, balance_points, held_points, created_at_us) VALUES (:a, 10, 0, 0)"),
            {"a": A},
        )
        conn.execute(
            text(
                "INSERT INTO lots (account, earned_on, expires_at_us, credited_points, remaining_points)"
                " VALUES (:a, :day, :expires, 10, 10)"
            ),
            {"a": A, "day": TODAY, "expires": lot_expiry_us(TODAY, 24)},
        )
    migrate("ledger_svc", engine)
    ledger = LedgerContext(engine, REGION, clock)
    try:
        assert moved_through(ledger, A) >= TODAY
        transfers.post_transfers(ledger, [earn("e1", A, 1), earn("e2", B, 2)])
        assert where(ledger, A) == {"lots": [(TODAY, 11)], "recent_lots": []}
        assert where(ledger, B) == {"lots": [], "recent_lots": [(TODAY, 2)]}
        assert_lots_placed(engine)
    finally:
        engine.dispose()
