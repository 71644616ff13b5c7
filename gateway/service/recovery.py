"""The recovery loop: after a restart and on a timer, finish or unwind every unfinished saga, exactly once.

Each transfer is driven through TransferService.drive, which re-sends the idempotent step it is at (the regions
deduplicate by the derived ids) or asks for the hold by id; redeem-anywhere requests follow their transfers. Status
checks are rate limited (a token bucket) and each saga backs off after a region fails to answer, so an outage does
not turn into a storm of checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from gateway.domain.transfers import State
from gateway.service.cross_region_transfers import TransferService
from gateway.service.redeem_anywhere import RedeemAnywhereService
from gateway.service.sagas import LeasedSagas
from service_kit.ratelimit import TokenBucket

log = logging.getLogger("carbon.gateway.recovery")
# An UNKNOWN transfer waits for an operator; its alert is repeated this often until one settles it.
UNKNOWN_RECHECK = timedelta(minutes=5)


class Recovery:
    def __init__(
        self,
        transfers: TransferService,
        anywhere: RedeemAnywhereService | None = None,
        batch_size: int = 100,
        checks_per_s: float = 50,
        burst: int = 100,
    ) -> None:
        self.transfers = transfers
        self.anywhere = anywhere
        self.batch_size = batch_size
        self.bucket = TokenBucket(checks_per_s, burst)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Drives every due unfinished saga the rate limit allows, transfers first; returns how many were driven."""
        driven = self._drive_due(self.transfers, self._drive_transfer)
        if self.anywhere is not None:
            driven += self._drive_due(self.anywhere, self._drive_redeem_anywhere)
        return driven

    def _drive_due(self, sagas: LeasedSagas[Any], drive: Callable[[str], bool]) -> int:
        """Drives the due sagas of one table while the bucket has tokens; counts those driven."""
        driven = 0
        for key in sagas.due(self.batch_size):
            if not self.bucket.take():
                break
            try:
                driven += drive(key)
            except Exception:  # one broken saga must not stop the others
                log.exception("recovery failed", extra={"table": sagas.table.name, "key": key})
                driven += 1
        return driven

    def _drive_transfer(self, transfer_id: str) -> bool:
        """Drives the transfer; an UNKNOWN one is not driven but alerted again (False)."""
        transfer = self.transfers.load(transfer_id)
        if transfer.state is State.UNKNOWN:
            log.error(
                "ALERT cross-region transfer still UNKNOWN: needs an operator",
                extra={"transfer_id": transfer_id, "reason": transfer.failure_reason, "alert": "XRT_UNKNOWN"},
            )
            self.transfers.postpone(transfer_id, UNKNOWN_RECHECK)
            return False
        self.transfers.drive(transfer_id)
        return True

    def _drive_redeem_anywhere(self, request_id: str) -> bool:
        assert self.anywhere is not None
        self.anywhere.drive(request_id)
        return True

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
