"""The owed-credits sweep: at start and then on a timer, every ingest replica posts the credit batches its outbox
still owes (docs/adr/0413-claims-in-the-credit-outbox.md). A batch stays owed when a crash, or an unreachable gateway
or ledger, stopped its request; without the sweep it would wait for the partner's resubmission or the next start.

Every replica sweeps, with no lease: posting a batch is idempotent at each step (Crediting.resume_pending says why),
and a batch younger than the minimum age is left to the request that recorded it. Each pass posts at most one page of
batches and goes on at once while pages come back full; a failed pass (a dependency down) waits twice as long as the
last, up to a ceiling, with jitter so replicas do not retry in step."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import timedelta

from ingest_svc.service.crediting import Crediting
from service_kit import failures
from service_kit.errors import DomainError

log = logging.getLogger("carbon.ingest")


@dataclass(frozen=True)
class SweepTiming:
    interval: timedelta  # between passes while all is well; zero: one pass at start, none after
    max_backoff: timedelta  # the longest wait after failed passes
    min_age: timedelta  # a batch younger than this belongs to the request posting it
    page: int = 100  # batches per pass


class OwedCredits:
    def __init__(self, crediting: Crediting, timing: SweepTiming) -> None:
        self._crediting = crediting
        self._timing = timing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def run_once(self, min_age: timedelta | None = None) -> tuple[int, int]:
        """One pass: the batches and events posted. Raises what the failing dependency raised."""
        return self._crediting.resume_pending(self._timing.page, self._timing.min_age if min_age is None else min_age)

    def next_wait_s(self, posted_batches: int | None) -> float:
        """How long to wait after a pass: none after a full page, the interval after a good pass, after a failed one
        (None) the interval doubled per failure in a row, capped, then 50-100% of it."""
        if posted_batches is None:
            self._failures += 1
            base = self._timing.interval or timedelta(seconds=1)
            backoff = min(base * (1 << min(self._failures, 20)), self._timing.max_backoff)
            return backoff.total_seconds() * random.uniform(0.5, 1.0)  # jitter, not a secret
        self._failures = 0
        return 0.0 if posted_batches >= self._timing.page else self._timing.interval.total_seconds()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ingest-owed-credits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        # The pass at start takes every owed batch: this process posts none of its own yet.
        min_age: timedelta | None = timedelta(0)
        while not self._stop.is_set():
            posted = self._pass(min_age)
            min_age = None
            if self._timing.interval <= timedelta(0) and posted is not None and posted < self._timing.page:
                return  # only the start was asked for, and all it found is posted
            self._stop.wait(self.next_wait_s(posted))

    def _pass(self, min_age: timedelta | None) -> int | None:
        """The batches one pass posted, or None when it failed (logged with its reason)."""
        try:
            batches, events = self.run_once(min_age)
        except DomainError as error:  # the gateway or the ledger did not answer
            self._log_failure(error.reason)
            return None
        except Exception as error:  # the loop must outlive any outage, and report a bug without dying of it
            failure = failures.classify(error)
            if failure is None:
                log.exception("owed credits sweep failed")
            self._log_failure(failure.reason if failure is not None else type(error).__name__)
            return None
        if events:
            log.info("posted owed credits", extra={"batches": batches, "events": events})
        return batches

    def _log_failure(self, reason: str) -> None:
        log.warning("owed credits not posted yet", extra={"reason": reason, "failures": self._failures + 1})
