"""What every use case needs: the engine, this ledger's region, the clock, the lot validity, and a retrying
transaction (PostgreSQL may abort a transaction on a serialization failure or deadlock; SQLite may be busy)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ledger_svc.domain.time import DEFAULT_VALIDITY_MONTHS, to_us
from ledger_svc.store.chain import SEAL_BATCHES_PER_CALL, seal
from service_kit.clock import Clock, system_clock
from service_kit.settings import Settings, SettingsError

log = logging.getLogger("carbon.ledger")
T = TypeVar("T")
MAX_ATTEMPTS = 8
# serialization_failure, deadlock_detected, unique_violation (two requests racing with one idempotency key:
# the retry finds the winner's row and answers as a replay).
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "23505"})
# The background sealer chains what committed in the last quarter second in one transaction, so that one sealing
# transaction serves many batches (ADR 0101), and stops after a second without work (the next commit starts it).
SEAL_DELAY_S = 0.25
SEALER_IDLE_S = 1.0


@dataclass
class LedgerContext:
    engine: Engine
    region_code: str
    clock: Clock = system_clock
    validity_months: int = DEFAULT_VALIDITY_MONTHS
    # Credit-only batches and the expiry sweep on PostgreSQL are set-based (ADR 0102); tests turn them off to compare.
    credit_fast_path: bool = True
    set_based_expiry: bool = True
    # Hold, CommitHold to a system account and ReleaseHold on PostgreSQL in a few statements each (ADR 0103).
    set_based_holds: bool = True
    _sealer_wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False, compare=False)
    _sealer_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _sealer: threading.Thread | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, clock: Clock = system_clock) -> LedgerContext:
        raw = settings.extra.get("CARBON_LEDGER_VALIDITY_MONTHS", str(DEFAULT_VALIDITY_MONTHS))
        if not raw.isdigit() or not 1 <= int(raw) <= 120:
            raise SettingsError(f"CARBON_LEDGER_VALIDITY_MONTHS must be 1..120, got {raw!r}")
        return cls(engine, settings.region_code, clock, int(raw))

    def now_us(self) -> int:
        return to_us(self.clock())

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one transaction, retrying it from the start when the database says so."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except Exception as error:  # SQLAlchemy's DBAPIError, or the driver's own error on the fast paths
                if attempt == MAX_ATTEMPTS or not _retryable(error):
                    raise
                log.info("transaction retried", extra={"attempt": attempt, "sqlstate": _sqlstate(error)})
                # Back off a little, with jitter, so the transactions that collided do not collide again.
                time.sleep(random.uniform(0, 0.002 * attempt))
        raise AssertionError("unreachable")

    def seal_journal(self) -> int:
        """Chains committed batches into blocks; skipped (0) when another transaction is sealing."""
        return self.transaction(seal)

    def seal_everything(self) -> None:
        """Chains every batch committed so far, waiting for a sealing transaction under way (the background
        sealer's) instead of leaving its batches to it."""
        while self.transaction(partial(seal, wait=True)):
            pass

    def seal_soon(self) -> None:
        """After a commit: chains the new batch into a block shortly, off the caller's path (ADR 0101). On SQLite,
        which has one writer at a time anyway, it seals at once."""
        if self.engine.dialect.name == "sqlite":
            self.seal_journal()
            return
        self._sealer_wake.set()
        with self._sealer_lock:
            if self._sealer is None or not self._sealer.is_alive():
                self._sealer = threading.Thread(target=self._seal_in_background, name="ledger-sealer", daemon=True)
                self._sealer.start()

    def _seal_in_background(self) -> None:
        while True:
            if not self._sealer_wake.wait(SEALER_IDLE_S):
                with self._sealer_lock:
                    if not self._sealer_wake.is_set():
                        self._sealer = None
                        return
            time.sleep(SEAL_DELAY_S)  # let a few more commits land: one sealing transaction for all of them
            self._sealer_wake.clear()
            try:
                # A call that sealed fewer than its limit left nothing behind: no empty transaction to find that out.
                while self.seal_journal() >= SEAL_BATCHES_PER_CALL:
                    pass
            except Exception as error:  # the next commit or VerifyJournal seals what is left
                log.warning("background sealing failed", extra={"error": str(error)})


def _sqlstate(error: Exception) -> str:
    driver_error = error.orig if isinstance(error, DBAPIError) else error
    return str(getattr(driver_error, "sqlstate", "") or "")


def _retryable(error: Exception) -> bool:
    if _sqlstate(error) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(error, DBAPIError) and "database is locked" in str(error.orig)
