"""The sweep of claims left by attempts that never recorded (docs/adr/0416-orphan-claims-sweep.md): claims made
ahead of recording (ADR 0415) by an attempt whose process then crashed before its commit, or whose release the
gateway could not take, would otherwise hold their activities until their day is dropped, and another partner's
report of such an activity would be refused while nothing earned.

A pass asks the gateway for this region's attempts that claimed ahead at least `min_age` ago and never said they
recorded, from where the last pass stopped. Each listed attempt that has no credit batch in this store is marked
ABANDONED under its id in the same table, in one transaction (so its record transaction, were it somehow still
running, now fails on the key and commits nothing), and its claims are released. An attempt with a credit batch
committed: its claims are never released here. The position moves on only after a page is done, so a pass the
gateway or the database interrupts is done again by the next one; every step is idempotent, so every replica may
sweep (a replica that finds the position moved by another stops its pass).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from ingest_svc.clients import GatewayClient
from ingest_svc.store import claim_sweep, credit_batches
from service_kit import failures
from service_kit.clock import Clock
from service_kit.errors import DomainError

log = logging.getLogger("carbon.ingest")


@dataclass(frozen=True)
class OrphanTiming:
    interval: timedelta  # between passes; zero: no sweeping
    min_age: timedelta  # an attempt younger than this may still be recording: left alone
    page: int = 20  # attempts per gateway page


@dataclass(frozen=True)
class Swept:
    attempts: int  # listed by the gateway
    abandoned: int  # of those, without a credit batch here
    released: int  # claims the gateway removed


class OrphanClaims:
    def __init__(self, engine: Engine, gateway: GatewayClient, clock: Clock, timing: OrphanTiming) -> None:
        self._engine = engine
        self._gateway = gateway
        self._clock = clock
        self._timing = timing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Swept:
        """One pass over the attempts that grew old enough since the last; raises what a failing dependency raised
        (the position then stays where the last finished page left it)."""
        min_age_s = max(1, int(self._timing.min_age.total_seconds()))
        with self._engine.connect() as conn:
            read_from = claim_sweep.position(conn)
        attempts = abandoned_count = released = 0
        while True:
            page = self._gateway.list_claim_attempts(min_age_s, read_from, self._timing.page)
            if page.attempts:
                with self._engine.begin() as conn:
                    abandoned = credit_batches.abandon_attempts(
                        conn, [a.attempt_id for a in page.attempts], self._clock()
                    )
                for attempt in page.attempts:
                    if attempt.attempt_id in abandoned:
                        released += self._gateway.release(attempt.fingerprints, attempt.days, attempt.attempt_id)
                attempts += len(page.attempts)
                abandoned_count += len(abandoned)
            with self._engine.begin() as conn:
                moved = claim_sweep.advance(conn, read_from, page.resume_page_token)
            if not moved or not page.next_page_token:
                return Swept(attempts, abandoned_count, released)
            read_from = page.resume_page_token

    def start(self) -> None:
        if self._timing.interval <= timedelta(0):
            return
        self._thread = threading.Thread(target=self._loop, name="ingest-orphan-claims", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        # A failed pass waits the interval too: a pass is one listing call, and the gateway's own outage keeps
        # credits owed anyway (the owed-credits sweep backs off for those).
        while not self._stop.wait(self._timing.interval.total_seconds()):
            self._pass()

    def _pass(self) -> None:
        try:
            swept = self.run_once()
        except DomainError as error:  # the gateway did not answer: the next pass does this one's work
            log.warning("orphan claims not swept yet", extra={"reason": error.reason})
            return
        except Exception as error:  # the loop must outlive any outage, and report a bug without dying of it
            failure = failures.classify(error)
            if failure is None:
                log.exception("orphan claims sweep failed")
            reason = failure.reason if failure is not None else type(error).__name__
            log.warning("orphan claims not swept yet", extra={"reason": reason})
            return
        if swept.released or swept.abandoned:
            log.info(
                "released claims of attempts that never recorded",
                extra={"attempts": swept.abandoned, "claims": swept.released},
            )
