"""Recovery: finishes what a crash or an unanswered ledger call left halfway (PENDING redemptions, CANCELLING
vouchers, PENDING donations) and marks expired vouchers; a background loop runs it at start and then periodically."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import Engine

from rewards_svc import store
from rewards_svc.clients import LedgerUnavailable
from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.service.charity import Charity
from rewards_svc.service.redemption import Redemptions
from rewards_svc.service.vouchers import RefundConflict, Vouchers
from service_kit.clock import Clock
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

log = logging.getLogger("carbon.rewards")

RECOVERY_BATCH = 200


@dataclass(frozen=True)
class RecoveryReport:
    redemptions_resolved: int = 0
    cancels_finished: int = 0
    donations_finished: int = 0
    vouchers_expired: int = 0
    orphaned_holds_released: int = 0
    unresolved: int = 0


class Recovery:
    def __init__(
        self, engine: Engine, clock: Clock, redemptions: Redemptions, vouchers: Vouchers, charity: Charity
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._redemptions = redemptions
        self._vouchers = vouchers
        self._charity = charity

    def recover(self, min_age_s: float = 0) -> RecoveryReport:
        """One pass over work older than min_age_s; safe beside live requests (every step is guarded and idempotent)."""
        now = self._clock()
        older_than = now - timedelta(seconds=min_age_s)
        with self._engine.connect() as connection:
            pending = store.redemptions.ids_in_state(connection, RedemptionState.PENDING, older_than, RECOVERY_BATCH)
            # Younger cancels may have their live request's refund still on the way: recovery does not race it.
            cancelling = store.vouchers.codes_cancelling(connection, older_than, RECOVERY_BATCH)
            pending_donations = store.charity.pending_donation_ids(connection, RECOVERY_BATCH)
        redemptions = _finish_each(pending, self._redemptions.resolve, finished=(), unresolved=(LedgerUnavailable,))
        # A refund id conflict waits for an operator: logged, not retried at the first pass's pace.
        cancels = _finish_each(
            cancelling,
            self._vouchers.finish_cancel,
            finished=(RefundConflict,),
            unresolved=(Unavailable, FailedPrecondition, InvalidArgument, NotFound),
        )
        # A donation the ledger refused is finished too: it is FAILED for good.
        donations = _finish_each(
            pending_donations,
            self._charity.finish_donation,
            finished=(FailedPrecondition,),
            unresolved=(Unavailable, InvalidArgument, NotFound),
        )
        with self._engine.begin() as connection:
            expired = store.vouchers.expire(connection, now)
        try:
            released = self._redemptions.release_orphaned_holds(RECOVERY_BATCH)
        except LedgerUnavailable:
            released = 0  # the next pass looks again; the hold's timeout bounds the wait
        report = RecoveryReport(
            redemptions_resolved=redemptions.finished,
            cancels_finished=cancels.finished,
            donations_finished=donations.finished,
            vouchers_expired=expired,
            orphaned_holds_released=released,
            unresolved=redemptions.unresolved + cancels.unresolved + donations.unresolved,
        )
        if report != RecoveryReport():
            log.info("recovery pass", extra=asdict(report))
        return report


@dataclass(frozen=True)
class _Tally:
    finished: int
    unresolved: int


def _finish_each(
    ids: Iterable[str],
    finish: Callable[[str], object],
    *,
    finished: tuple[type[Exception], ...],
    unresolved: tuple[type[Exception], ...],
) -> _Tally:
    """Calls `finish` for each id: it finished the work when it returns or raises one of `finished`, left it for the
    next pass when it raises one of `unresolved`; anything else propagates."""
    done = left = 0
    for item in ids:
        try:
            finish(item)
            done += 1
        except finished:
            done += 1
        except unresolved:
            left += 1
    return _Tally(finished=done, unresolved=left)


class RecoveryLoop:
    """A daemon thread: one full recovery pass now (retried until the ledger answers), then one per interval for
    work older than min_age_s. `stop` ends it and waits for a pass in progress (the server's stop hook)."""

    def __init__(self, recovery: Recovery, interval_s: float, min_age_s: float) -> None:
        self._recovery = recovery
        self._interval_s = interval_s
        self._min_age_s = min_age_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rewards-recovery", daemon=True)

    def start(self) -> RecoveryLoop:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                report = self._recovery.recover(0 if first else self._min_age_s)
                first = first and report.unresolved > 0
            except Exception:
                log.exception("recovery pass crashed")
            self._stop.wait(1.0 if first else self._interval_s)
