"""Property tests: random sequences of credits, debits, holds, commits, releases, expiries, lot moves and clock
moves keep every invariant (no negative balance, zero sum, FIFO by expiry, no expired point spent, idempotent
replays, every lot in the one table its account's moved-through day says)."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger_svc.domain.balance import balance_view
from ledger_svc.domain.holds import HoldRequest
from ledger_svc.domain.time import day_of
from ledger_svc.domain.transfers import Status
from ledger_svc.service import audit, expiry, holds, lot_mover, reads, transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import reads as read_store
from service_kit.errors import DomainError
from tests.ledger.ledger_support import (
    REDEMPTION,
    REGION,
    MovableClock,
    account_number,
    assert_incremental_agrees,
    assert_lots_placed,
    earn,
    migrated_engine,
    spend,
)

ACCOUNTS = [account_number(n) for n in range(1, 4)]
accounts = st.sampled_from(ACCOUNTS)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.engine = migrated_engine(f"sqlite:///{Path(self.folder.name) / 'p.db'}")
        self.clock = MovableClock()
        self.ledger = LedgerContext(self.engine, REGION, self.clock)
        self.counter = 0
        self.posted: list[tuple[object, Status]] = []
        self.pending_holds: list[str] = []

    def teardown(self) -> None:
        # Once per history rather than per step (the full audit per step is the invariant's): the incremental check
        # (ADR 0129) answers what the full audit answers after every random history.
        assert_incremental_agrees(self.ledger, audit.check_conservation(self.ledger))
        self.engine.dispose()
        self.folder.cleanup()

    def _id(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    @rule(account=accounts, amount=st.integers(1, 500), days_ago=st.integers(0, 800))
    def credit(self, account: str, amount: int, days_ago: int) -> None:
        request = earn(self._id(), account, amount, earned_at=self.clock.now - timedelta(days=days_ago))
        [result] = transfers.post_transfers(self.ledger, [request])
        assert result.status is Status.POSTED or result.failure_reason == "LOT_ALREADY_EXPIRED"
        if result.status is Status.POSTED:
            self.posted.append((request, result.status))

    @rule(account=accounts, amount=st.integers(1, 400))
    def debit(self, account: str, amount: int) -> None:
        now_us = self.ledger.now_us()
        before = reads.list_lots(self.ledger, account, 500, "", False).lots
        available = reads.get_balance(self.ledger, account).available_points
        request = spend(self._id(), account, amount)
        [result] = transfers.post_transfers(self.ledger, [request])
        if amount > available:
            assert result.failure_reason == "INSUFFICIENT_POINTS"
            return
        assert result.status is Status.POSTED
        self.posted.append((request, result.status))
        taken = result.lots
        assert sum(p.amount_points for p in taken) == amount
        assert all(p.key.expires_at_us > now_us for p in taken), "an expired point was spent"
        last = max(p.key for p in taken)
        untouched = [lot for lot in before if lot.lot_id not in {p.lot_id for p in taken}]
        for lot in untouched:
            if lot.key.expires_at_us > now_us:
                assert lot.key >= last, "a later-expiring lot was spent before a sooner one"

    @rule(account=accounts, amount=st.integers(1, 300), timeout_s=st.integers(1, 3600))
    def hold(self, account: str, amount: int, timeout_s: int) -> None:
        hold_id = self._id()
        try:
            holds.hold(self.ledger, HoldRequest(hold_id, account, amount, timeout_us=timeout_s * 1_000_000))
        except DomainError as error:
            assert error.reason == "INSUFFICIENT_POINTS"
            return
        self.pending_holds.append(hold_id)

    @precondition(lambda self: self.pending_holds)
    @rule(data=st.data(), commit=st.booleans())
    def resolve(self, data: st.DataObject, commit: bool) -> None:
        hold_id = data.draw(st.sampled_from(self.pending_holds))
        self.pending_holds.remove(hold_id)
        try:
            if commit:
                hold = holds.get_hold(self.ledger, hold_id)
                amount = data.draw(st.integers(0, hold.amount_points))
                holds.commit_hold(self.ledger, hold_id, amount, REDEMPTION)
                # Exactly once: the same commit again is a replay.
                _, again = holds.commit_hold(self.ledger, hold_id, amount, REDEMPTION)
                assert again.status is Status.ALREADY_POSTED
            else:
                holds.release_hold(self.ledger, hold_id)
        except DomainError as error:
            assert error.reason == "HOLD_EXPIRED"

    @rule(days=st.integers(0, 200), seconds=st.integers(0, 7200))
    def move_clock(self, days: int, seconds: int) -> None:
        self.clock.advance(days=days, seconds=seconds)

    @rule()
    def expire(self) -> None:
        expiry.expire_points(self.ledger, None, batch_size=3, max_batches=0)
        for account in ACCOUNTS:
            for lot in reads.list_lots(self.ledger, account, 500, "", False).lots:
                assert lot.key.expires_at_us > self.ledger.now_us() or self._held_in(lot.lot_id)

    def _held_in(self, lot_id: int) -> bool:
        # Points of a timed-out hold count as back in their lot on reads until a debit or the sweep releases them.
        return any(
            lot_id in {p.lot_id for p in holds.get_hold(self.ledger, hold_id).lots} for hold_id in self.pending_holds
        )

    @precondition(lambda self: self.posted)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        request, _ = data.draw(st.sampled_from(self.posted))
        balances = [reads.get_balance(self.ledger, account) for account in ACCOUNTS]
        [result] = transfers.post_transfers(self.ledger, [request])  # type: ignore[list-item]
        assert result.status is Status.ALREADY_POSTED
        assert balances == [reads.get_balance(self.ledger, account) for account in ACCOUNTS]

    @rule(batch_accounts=st.integers(1, 3))
    def move_lots(self, batch_accounts: int) -> None:
        """The mover between any two steps: closed days' recent lots into lots, ids and points unchanged."""
        before = {account: reads.list_lots(self.ledger, account, 500, "", True).lots for account in ACCOUNTS}
        through = lot_mover.closed_through(day_of(self.ledger.now_us()))
        lot_mover.move_lots(self.ledger, through, batch_accounts=batch_accounts)
        assert before == {account: reads.list_lots(self.ledger, account, 500, "", True).lots for account in ACCOUNTS}

    @rule()
    def sweep_holds(self) -> None:
        holds.sweep_expired_holds(self.ledger, 0)

    @invariant()
    def books_balance(self) -> None:
        result = audit.check_conservation(self.ledger)
        assert result.balanced, result.problems
        assert_lots_placed(self.engine)
        # GetBalance reads the account's maintained sums and only its soon-expiring lots (ADR 0117); its answer is
        # the definition's: every lot, timed-out holds' points back in their lots, live holds apart.
        now_us = self.ledger.now_us()
        for account in ACCOUNTS:
            balance = reads.get_balance(self.ledger, account)
            assert balance.available_points >= 0 and balance.held_points >= 0
            with self.engine.connect() as conn:
                lots = read_store.lot_views(conn, account, now_us)
                held = read_store.live_held_points(conn, account, now_us)
            assert balance == balance_view(lots, held, now_us)


LedgerMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


TestLedgerInvariants = LedgerMachine.TestCase
