"""The recovery loop: after a restart and on a timer, finish or unwind every unfinished transfer, exactly once.

Each transfer is driven through TransferService.drive, which re-sends the idempotent step it is at (the regions
deduplicate by the derived ids) or asks for the hold by id. Status checks are rate limited (a token bucket) and
each transfer backs off after a region fails to answer, so an outage does not turn into a storm of checks.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from gateway import store
from gateway.anywhere import RedeemAnywhereService
from gateway.domain import State
from gateway.transfers import TransferService
from service_kit.ratelimit import TokenBucket

log = logging.getLogger("carbon.gateway.recovery")
UNKNOWN_RECHECK = timedelta(minutes=5)


class Recovery:
    def __init__(
        self,
        service: TransferService,
        anywhere: RedeemAnywhereService | None = None,
        batch_size: int = 100,
        checks_per_s: float = 50,
        burst: int = 100,
    ) -> None:
        self.service = service
        self.anywhere = anywhere
        self.batch_size = batch_size
        self.bucket = TokenBucket(checks_per_s, burst)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Drives every due unfinished transfer the rate limit allows; returns how many were driven."""
        now = self.service.clock()
        with self.service.engine.connect() as conn:
            due = store.due_unfinished(conn, now, self.batch_size)
        driven = 0
        for transfer_id in due:
            if not self.bucket.take():
                break
            with self.service.engine.connect() as conn:
                transfer = store.get_transfer(conn, transfer_id)
            if transfer is None:
                continue
            if transfer.state is State.UNKNOWN:
                log.error(
                    "ALERT cross-region transfer still UNKNOWN: needs an operator",
                    extra={"transfer_id": transfer_id, "reason": transfer.failure_reason, "alert": "XRT_UNKNOWN"},
                )
                with self.service.engine.begin() as conn:
                    store.postpone(conn, transfer_id, now + UNKNOWN_RECHECK)
                continue
            try:
                self.service.drive(transfer_id)
            except Exception:  # one broken transfer must not stop the others
                log.exception("recovery of a transfer failed", extra={"transfer_id": transfer_id})
            driven += 1
        return driven + self._run_anywhere(now)

    def _run_anywhere(self, now: datetime) -> int:
        """Unfinished redeem-anywhere requests after their transfers (a request waits for its transfer)."""
        if self.anywhere is None:
            return 0
        with self.service.engine.connect() as conn:
            due = store.due_unfinished(conn, now, self.batch_size, store.anywhere)
        driven = 0
        for request_id in due:
            if not self.bucket.take():
                break
            try:
                self.anywhere.drive(request_id)
            except Exception:
                log.exception("recovery of a redeem-anywhere request failed", extra={"request_id": request_id})
            driven += 1
        return driven

    def start(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:
                    log.exception("recovery scan failed")
                self._stop.wait(interval_s)

        self._thread = threading.Thread(target=loop, name="xrt-recovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
