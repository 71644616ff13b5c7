"""Driving a stored saga (a transfer, a redeem-anywhere request) step by step under a lease.

A driver claims the row's lease, then runs one step at a time, renewing the lease before each, until the saga
settles. A step that finds a region down raises Postponed: the row is postponed with a doubling delay and the
recovery loop drives it again later. No database transaction is open while a step calls a region.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
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


class LeasedSagas(ABC, Generic[Saga]):
    """The sagas stored in one table, driven under leases. Subclasses say how to load one and what its next step is."""

    table: Table
    finished_states: frozenset[str]
    # A bound on steps per drive: turns a logic error into a log line, not a spin.
    max_steps: int

    def __init__(self, engine: Engine, clock: Clock, lease: timedelta, retry_max: timedelta) -> None:
        self.engine = engine
        self.clock = clock
        self.lease = lease
        self.retry_max = retry_max

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
    def step(self, saga: Saga) -> None:
        """Runs the saga's next step; raises Postponed when a region does not answer."""

    def drive(self, key: str, leased: bool = False) -> Saga:
        """Runs the steps until the saga settles or a region does not answer. Safe to call any time."""
        if not leased:
            now = self.clock()
            with self.engine.begin() as conn:
                claimed = leases.claim(conn, self.table, key, now, now + self.lease)
            if not claimed:  # someone else is driving it right now (read outside the write transaction)
                return self.load(key)
        try:
            self._run_steps(key)
        except Postponed:
            self.postpone(key, retry_delay(self.attempts(self.load(key)), self.retry_max))
        else:
            with self.engine.begin() as conn:
                leases.release_lease(conn, self.table, key)
        return self.load(key)

    def _run_steps(self, key: str) -> None:
        for _ in range(self.max_steps):
            saga = self.load(key)
            if self.settled(saga):
                return
            with self.engine.begin() as conn:
                leases.renew_lease(conn, self.table, key, self.clock() + self.lease)
            self.step(saga)
        log.error("saga did not settle within the step bound", extra={"table": self.table.name, "key": key})

    def due(self, limit: int) -> list[str]:
        """Keys of unfinished sagas due for another attempt and leased by no one, oldest first."""
        with self.engine.connect() as conn:
            return leases.due_unfinished(conn, self.table, self.finished_states, self.clock(), limit)

    def postpone(self, key: str, delay: timedelta) -> None:
        """Not before `delay` from now, and without a lease: the next attempt is the recovery loop's."""
        with self.engine.begin() as conn:
            leases.postpone(conn, self.table, key, self.clock() + delay)
