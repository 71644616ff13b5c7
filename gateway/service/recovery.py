"""The recovery loop: after a restart and on a timer, finish or unwind every unfinished saga, exactly once.

Each transfer is driven through TransferService.drive, which re-sends the idempotent step it is at (the regions
deduplicate by the derived ids) or asks for the hold by id; redeem-anywhere requests follow their transfers. Status
checks are rate limited (a token bucket) and each saga backs off after a region fails to answer, so an outage does
not turn into a storm of checks.

Transfers are worked through in batches: one statement leases a batch of due ones, which are driven in parallel,
a few lanes per region pair (so a region that hangs ties up only its own pairs' lanes), their steps grouped into
shared ledger calls and commits like live ones; a full batch is followed by the next at once (ADR 0621). Those of a
batch at the hold or the credit are driven in lockstep like a CreateCrossRegionTransfers batch (ADR 0625).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from gateway.domain.transfers import BATCH_TRANSFERS, State, Transfer
from gateway.service.cross_region_transfers import TransferService
from gateway.service.redeem_anywhere import RedeemAnywhereService
from gateway.service.sagas import LeasedSagas
from gateway.service.transfer_batches import TransferBatches
from service_kit.ratelimit import TokenBucket

log = logging.getLogger("carbon.gateway.recovery")
# An UNKNOWN transfer waits for an operator; its alert is repeated this often until one settles it.
UNKNOWN_RECHECK = timedelta(minutes=5)
# How many transfers are driven at once: in all, and per region pair.
DRIVERS = 32
DRIVERS_PER_PAIR = 16


class Recovery:
    def __init__(
        self,
        transfers: TransferService,
        anywhere: RedeemAnywhereService | None = None,
        batch_size: int = BATCH_TRANSFERS,
        checks_per_s: float = 500,
        burst: int = 500,
        drivers: int = DRIVERS,
        drivers_per_pair: int = DRIVERS_PER_PAIR,
    ) -> None:
        self.transfers = transfers
        self.batches = TransferBatches(transfers)
        self.anywhere = anywhere
        self.batch_size = batch_size
        self.bucket = TokenBucket(checks_per_s, burst)
        self.drivers_per_pair = drivers_per_pair
        self._pool = ThreadPoolExecutor(drivers, thread_name_prefix="xrt-recovery-driver")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take_back_leases(self) -> int:
        """Before the loop starts: the leases this gateway instance's killed predecessor left end now, so its
        sagas are due at once instead of after their leases run out (ADR 0622). Returns how many."""
        taken = self.transfers.take_back_leases()
        if self.anywhere is not None:
            taken += self.anywhere.take_back_leases()
        if taken:
            log.warning("took back the leases of this instance's previous process", extra={"sagas": taken})
        return taken

    def run_once(self) -> int:
        """Drives one batch of due transfers and the due redeem-anywhere requests the rate limit allows; returns how
        many were driven."""
        driven = self._drive_transfer_batch()
        if self.anywhere is not None:
            driven += self._drive_due(self.anywhere, self._drive_redeem_anywhere)
        return driven

    def _drive_transfer_batch(self) -> int:
        """Leases up to a batch of due transfers in one statement and drives them in parallel lanes per region
        pair; returns how many it leased."""
        allowed = 0
        while allowed < self.batch_size and self.bucket.take():
            allowed += 1
        if not allowed:
            return 0
        claimed_at = self.transfers.clock()
        batch = self.transfers.claim_due(allowed)
        # Those at the hold or the credit go in lockstep, every hop carrying them all (ADR 0625); the rest by lanes.
        rest = self.batches.drive_claimed(batch)
        pairs: dict[tuple[str, str], list[Transfer]] = defaultdict(list)
        for transfer in rest:
            pairs[(transfer.request.from_region, transfer.request.to_region)].append(transfer)
        lanes = [
            transfers[lane :: self.drivers_per_pair]
            for transfers in pairs.values()
            for lane in range(min(self.drivers_per_pair, len(transfers)))
        ]
        for done in [self._pool.submit(self._drive_lane, lane, claimed_at) for lane in lanes]:
            done.result()
        return len(batch)

    def _drive_lane(self, lane: list[Transfer], claimed_at: datetime) -> None:
        for transfer in lane:
            try:
                self._drive_claimed(transfer, claimed_at)
            except Exception:  # one broken saga must not stop the others
                log.exception("recovery failed", extra={"table": "xr_transfers", "key": transfer.transfer_id})

    def _drive_claimed(self, transfer: Transfer, claimed_at: datetime) -> None:
        """Drives a transfer the batch leased; one that waited in its lane for half a lease is claimed again first
        (its lease may have run out and another driver taken it)."""
        if transfer.state is State.UNKNOWN:
            self._alert_unknown(transfer.transfer_id, transfer.failure_reason)
        elif self.transfers.clock() - claimed_at > self.transfers.lease / 2:
            self.transfers.drive(transfer.transfer_id)
        else:
            self.transfers.drive(transfer.transfer_id, leased=True, saga=transfer)

    def _alert_unknown(self, transfer_id: str, reason: str) -> None:
        log.error(
            "ALERT cross-region transfer still UNKNOWN: needs an operator",
            extra={"transfer_id": transfer_id, "reason": reason, "alert": "XRT_UNKNOWN"},
        )
        self.transfers.postpone(transfer_id, UNKNOWN_RECHECK)

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

    def _drive_redeem_anywhere(self, request_id: str) -> bool:
        assert self.anywhere is not None
        self.anywhere.drive(request_id)
        return True

    def start(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    backlog = self.run_once() >= self.batch_size  # a full batch: more are waiting, go on at once
                except Exception:
                    log.exception("recovery scan failed")
                    backlog = False
                if not backlog:
                    self._stop.wait(interval_s)

        self._thread = threading.Thread(target=loop, name="xrt-recovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False)
