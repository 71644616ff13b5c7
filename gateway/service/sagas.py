"""Driving a stored saga (a transfer, a redeem-anywhere request) step by step under a lease.

A driver claims the row's lease, then runs one step at a time, renewing the lease before each, until the saga
settles. A step that finds a region down raises Postponed: the row is postponed with a doubling delay and the
recovery loop drives it again later. No database transaction is open while a step calls a region.

A saga whose every step ends in one compare-and-set write (transfers, ADR 0619) renews the lease in that write and
hands back the saga as written, so driving it costs no extra reads or lease writes; losing a compare-and-set means
another driver owns the saga, and this one stops.

Every lease names the gateway instance that holds it: a gateway restarted under its instance name takes back the
leases its killed predecessor left (`take_back_leases`) instead of waiting for them to run out (ADR 0622).
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import timedelta
from typing import Generic, TypeVar

from sqlalchemy import Engine, Table

from gateway.domain.transfers import retry_delay
from gateway.store import leases
from service_kit.clock import Clock

log = logging.getLogger("carbon.gateway.sagas")
Saga = TypeVar("Saga")


class Postponed(Exception):
    """A region did not answer: the step is retried later by the recovery loop."""


class LostRace(Exception):
    """A step's compare-and-set found the saga moved by another driver (this one's lease ran out): stop driving."""


class LeasedSagas(ABC, Generic[Saga]):
    """The sagas stored in one table, driven under leases. Subclasses say how to load one and what its next step is."""

    table: Table
    finished_states: frozenset[str]
    unfinished_states: frozenset[str]
    # A bound on steps per drive: turns a logic error into a log line, not a spin.
    max_steps: int
    # Each step's own write renews the lease, and the last one (settling the saga) clears it.
    steps_renew_lease: bool = False

    def __init__(
        self, engine: Engine, clock: Clock, lease: timedelta, retry_max: timedelta, lease_owner: str = ""
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.lease = lease
        self.retry_max = retry_max
        # Without an instance name a process's leases are its own alone: no successor can tell them from a live
        # sibling's, so they run out as before.
        self.lease_owner = lease_owner or f"process-{uuid.uuid4().hex}"

    @abstractmethod
    def load(self, key: str) -> Saga:
        """The stored saga; it exists (drive is only called for recorded keys)."""

    @abstractmethod
    def settled(self, saga: Saga) -> bool:
        """Nothing more to drive: finished, or waiting for an operator."""

    @abstractmethod
    def attempts(self, saga: Saga) -> int:
        """Failed tries to reach a region so far (the backoff doubles per attempt)."""

    @abstractmethod
    def step(self, saga: Saga) -> Saga | None:
        """Runs the saga's next step; raises Postponed when a region does not answer, LostRace when another driver
        moved it. Returns the saga as the step wrote it, or None when it must be read again."""

    def drive(self, key: str, leased: bool = False, saga: Saga | None = None) -> Saga:
        """Runs the steps until the saga settles or a region does not answer. Safe to call any time. `saga`: the
        saga as stored right now, when the caller has it (it just recorded or claimed it)."""
        if not leased:
            now = self.clock()
            with self.engine.begin() as conn:
                claimed = leases.claim(conn, self.table, key, now, now + self.lease, self.lease_owner)
            if not claimed:  # someone else is driving it right now (read outside the write transaction)
                return self.load(key)
            saga = None
        try:
            saga, stepped = self._run_steps(key, saga)
        except Postponed:
            return self.set_aside(key)
        except LostRace:
            return self.load(key)
        if not (self.steps_renew_lease and stepped and self.settled(saga)):
            with self.engine.begin() as conn:
                leases.release_lease(conn, self.table, key)
        return saga if self.steps_renew_lease else self.load(key)

    def drive_from(self, key: str, step: Callable[[], Saga]) -> Saga:
        """Runs one step its leased driver began elsewhere (a batch sent that step's call for many sagas and now
        hands over one whose answer left the usual path), then drives the saga on as drive does."""
        try:
            saga = step()
        except Postponed:
            return self.set_aside(key)
        except LostRace:
            return self.load(key)
        return saga if self.settled(saga) else self.drive(key, leased=True, saga=saga)

    def set_aside(self, key: str) -> Saga:
        """A step found its region silent: postponed with a doubling delay, for the recovery loop; as it stands."""
        self.postpone(key, retry_delay(self.attempts(self.load(key)), self.retry_max))
        return self.load(key)

    def _run_steps(self, key: str, saga: Saga | None) -> tuple[Saga, bool]:
        """The saga as it stands after the steps, and whether any step ran."""
        current = saga if saga is not None else self.load(key)
        for steps in range(self.max_steps):
            if self.settled(current):
                return current, steps > 0
            if not self.steps_renew_lease:
                with self.engine.begin() as conn:
                    leases.renew_lease(conn, self.table, key, self.clock() + self.lease, self.lease_owner)
            after = self.step(current)
            current = after if after is not None else self.load(key)
        log.error("saga did not settle within the step bound", extra={"table": self.table.name, "key": key})
        return current, True

    def take_back_leases(self) -> int:
        """Ends the leases left by this gateway instance's previous process (killed: its drivers are gone), so the
        recovery loop drives those sagas at once; called before this process drives anything. Returns how many."""
        with self.engine.begin() as conn:
            return leases.take_back(conn, self.table, self.lease_owner, self.unfinished_states)

    def due(self, limit: int) -> list[str]:
        """Keys of unfinished sagas due for another attempt and leased by no one, oldest first."""
        with self.engine.connect() as conn:
            return leases.due_unfinished(conn, self.table, self.finished_states, self.clock(), limit)

    def postpone(self, key: str, delay: timedelta) -> None:
        """Not before `delay` from now, and without a lease: the next attempt is the recovery loop's."""
        with self.engine.begin() as conn:
            leases.postpone(conn, self.table, key, self.clock() + delay)
