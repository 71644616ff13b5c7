"""State changes of concurrent transfers committed together: one transaction for every write that arrives while the
previous ones commit (group commit), each still its own compare-and-set with its own answer.

A driver waits until its write has committed before it calls a region, exactly as when it committed alone, so the
protocol's order (decision durable before B is touched, and so on) is unchanged; only the commits are shared. Writes
of a group are applied in transfer id order, so two groups in flight never wait on each other's rows in a cycle.
See docs/adr/0619-fewer-gateway-writes-per-transfer.md.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, Engine

from gateway.domain.transfers import Decision, HeldLot, State, Transfer
from gateway.service.sagas import LostRace
from gateway.store import transfers as store
from service_kit.clock import Clock
from service_kit.coalescing import Coalescer
from service_kit.db import one_statement_transaction

log = logging.getLogger("carbon.gateway.transfers")

# Groups in flight at once: while they commit, later writes gather into the next group.
SLOTS = 2
MAX_GROUP_WRITES = 256


class Write(NamedTuple):
    transfer_id: str
    # The insert or compare-and-set, one statement: True when it moved the row.
    apply: Callable[[Connection], bool]
    # The compare-and-set itself, when the write is one: a group runs those of one statement together.
    cas: store.CompareAndSet | None = None


class Planned(NamedTuple):
    """A step's write not yet made, and the transfer as it stands once the write moved the row."""

    write: Write
    after: Transfer


class TransferWrites:
    """The writes of a transfer's steps. Each is a compare-and-set on the state (and decision) the driver read; each
    renews the driver's lease for the step that follows, and the one that settles the transfer ends it. Each returns
    the transfer as written, or raises LostRace when another driver had moved it."""

    def __init__(self, engine: Engine, clock: Clock, lease: timedelta, lease_owner: str, slots: int = SLOTS) -> None:
        self.engine = engine
        self.clock = clock
        self.lease = lease
        self.lease_owner = lease_owner
        self._groups: Coalescer[Write, bool] = Coalescer(self._commit_group, slots, MAX_GROUP_WRITES)

    def record(self, transfer: Transfer) -> bool:
        """Stores a new transfer, leased to its driver, in a transaction shared with concurrent writes; False when a
        twin with the same id was stored first (the caller replays it)."""
        lease_until = self._next_lease()

        def write(conn: Connection) -> bool:
            return store.insert_new_transfer(conn, transfer, lease_until, self.lease_owner)

        return self._groups.submit("xr_transfers", Write(transfer.transfer_id, write), 1)

    def record_many(self, transfers: Sequence[Transfer]) -> set[str]:
        """Stores many new transfers, leased to their driver, in one transaction and one statement (a batch of
        CreateCrossRegionTransfers); returns the ids stored now: the others' twins were stored first."""
        if not transfers:
            return set()
        lease_until = self._next_lease()
        with self.engine.begin() as conn:
            return store.insert_new_transfers(conn, transfers, lease_until, self.lease_owner)

    def decide(self, transfer: Transfer, expected: Decision, decision: Decision, reason: str = "") -> Transfer:
        return self.apply(self.plan_decide(transfer, expected, decision, reason))

    def advance(
        self,
        transfer: Transfer,
        state: State,
        *,
        decision: Decision | None = None,
        failure_reason: str | None = None,
        hold_expires_at: datetime | None = None,
        held_lots: list[HeldLot] | None = None,
    ) -> Transfer:
        """Moves the transfer on to an unsettled state (with a decision, when one is made with it)."""
        planned = self.plan_advance(
            transfer,
            state,
            decision=decision,
            failure_reason=failure_reason,
            hold_expires_at=hold_expires_at,
            held_lots=held_lots,
        )
        return self.apply(planned)

    def finish(self, transfer: Transfer, state: State, reason: str) -> Transfer:
        """Settles the transfer (finished, or UNKNOWN for an operator) and ends the lease in the same write."""
        finished = self.apply(self.plan_finish(transfer, state, reason))
        log.info("transfer finished", extra={"transfer_id": transfer.transfer_id, "state": state.value})
        return finished

    def apply_together(self, planned: Sequence[Planned]) -> list[bool]:
        """Commits many transfers' planned writes in one transaction (a batch's step), each still its own
        compare-and-set: True where it moved the row (the transfer is then `after`), False where another driver had
        moved it (this driver steps back from that transfer)."""
        return self._commit_group([plan.write for plan in planned]) if planned else []

    def finish_many(self, settling: Sequence[Transfer], state: State) -> list[Transfer | None]:
        """Settles many transfers with no failure reason (a batch's COMMITTED), ending their leases, in one
        transaction with one compare-and-set statement per state they are found in: each transfer as written, or None
        where another driver had moved it."""
        if not settling:
            return []
        finished_at = self.clock()
        moved: set[str] = set()
        by_state: dict[State, list[str]] = {}
        for transfer in settling:
            by_state.setdefault(transfer.state, []).append(transfer.transfer_id)
        with self.engine.begin() as conn:
            for expected, ids in sorted(by_state.items()):
                moved |= store.finish_many(conn, ids, expected, state, finished_at)
        return [
            replace(t, state=state, failure_reason="", finished_at=finished_at, attempts=0, next_attempt_at=None)
            if t.transfer_id in moved
            else None
            for t in settling
        ]

    # --- each write, planned: the compare-and-set and the transfer as it will stand ---------------------------------

    def plan_decide(self, transfer: Transfer, expected: Decision, decision: Decision, reason: str = "") -> Planned:
        cas = store.decide_cas(
            transfer.transfer_id,
            transfer.state,
            expected,
            decision,
            reason,
            lease_until=self._next_lease(),
            lease_owner=self.lease_owner,
        )
        after = replace(transfer, decision=decision, failure_reason=reason)
        return _planned(cas, after)

    def plan_advance(
        self,
        transfer: Transfer,
        state: State,
        *,
        decision: Decision | None = None,
        failure_reason: str | None = None,
        hold_expires_at: datetime | None = None,
        held_lots: list[HeldLot] | None = None,
    ) -> Planned:
        cas = store.advance_cas(
            transfer.transfer_id,
            transfer.state,
            state,
            decision=decision,
            failure_reason=failure_reason,
            hold_expires_at=hold_expires_at,
            held_lots=held_lots,
            lease_until=self._next_lease(),
            lease_owner=self.lease_owner,
        )
        after = replace(
            transfer,
            state=state,
            decision=decision or transfer.decision,
            failure_reason=transfer.failure_reason if failure_reason is None else failure_reason,
            hold_expires_at=hold_expires_at or transfer.hold_expires_at,
            held_lots=transfer.held_lots if held_lots is None else held_lots,
            attempts=0,
            next_attempt_at=None,
        )
        return _planned(cas, after)

    def plan_finish(self, transfer: Transfer, state: State, reason: str) -> Planned:
        finished_at = self.clock()
        cas = store.advance_cas(
            transfer.transfer_id,
            transfer.state,
            state,
            failure_reason=reason,
            finished_at=finished_at,
            release_lease=True,
        )
        after = replace(
            transfer, state=state, failure_reason=reason, finished_at=finished_at, attempts=0, next_attempt_at=None
        )
        return _planned(cas, after)

    def _next_lease(self) -> datetime:
        return self.clock() + self.lease

    def apply(self, planned: Planned) -> Transfer:
        """Runs the compare-and-set in a transaction shared with concurrent ones (a database error reaches every
        member of the group); the transfer as written."""
        if not self._groups.submit("xr_transfers", planned.write, 1):
            log.warning(
                "transfer moved by another driver; stepping back", extra={"transfer_id": planned.after.transfer_id}
            )
            raise LostRace(planned.after.transfer_id)
        return planned.after

    def _commit_group(self, writes: Sequence[Write]) -> list[bool]:
        if len(writes) == 1:
            # Each write is one statement (an insert or a compare-and-set update): alone, it needs no transaction
            # around it, and BEGIN and COMMIT would be two more round trips (ADR 0624).
            with one_statement_transaction(self.engine) as conn:
                return [writes[0].apply(conn)]
        moved = [False] * len(writes)
        in_order = sorted(range(len(writes)), key=lambda i: writes[i].transfer_id)
        updates = [index for index in in_order if writes[index].cas is not None]
        with self.engine.begin() as conn:
            # The compare-and-sets of one statement go together (ADR 0625); inserts (new rows) one by one.
            together = store.run_together(conn, [cas for index in updates if (cas := writes[index].cas) is not None])
            for index, done in zip(updates, together, strict=True):
                moved[index] = done
            for index in in_order:
                if writes[index].cas is None:
                    moved[index] = writes[index].apply(conn)
        return moved


def _planned(cas: store.CompareAndSet, after: Transfer) -> Planned:
    """A compare-and-set as a write of a group, and the transfer as it stands once the write moved the row."""
    return Planned(Write(after.transfer_id, functools.partial(store.run, write=cas), cas), after)
