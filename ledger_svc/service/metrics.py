"""The ledger's domain metrics: points issued (earn credits), redeemed and expired, as they are posted, and the
outcome of the last conservation check (whether the books balance, and the points outstanding).

Counted where a call posted them (status POSTED: a replay answered ALREADY_POSTED is not counted again). The
instruments are OpenTelemetry's and cost next to nothing while telemetry is off (service_kit/telemetry.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from carbon.ledger.v1 import ledger_service_pb2 as pb
from ledger_svc.domain.conservation import Conservation
from ledger_svc.domain.transfers import ItemResult, Status, TransferRequest
from service_kit import telemetry

# The transfer codes counted, by the name of the counter that counts them.
COUNTED_CODES: dict[int, str] = {pb.TRANSFER_CODE_EARN: "issued", pb.TRANSFER_CODE_REDEEM: "redeemed"}


class LedgerMetrics:
    def __init__(self, region_code: str) -> None:
        meter = telemetry.meter("carbon.ledger")
        self._attributes = {"carbon.region": region_code}
        self._counters = {
            kind: meter.create_counter(f"carbon.points.{kind}", unit="{point}", description=f"points {kind}")
            for kind in ("issued", "redeemed", "expired")
        }
        self._balanced = meter.create_gauge(
            "carbon.ledger.balanced", unit="1", description="1 when the last conservation check balanced, else 0"
        )
        self._outstanding = meter.create_gauge(
            "carbon.ledger.outstanding", unit="{point}", description="points held by accounts at the last check"
        )

    def _add(self, kind: str, points: int) -> None:
        if points:
            self._counters[kind].add(points, self._attributes)

    def posted(self, results: Iterable[ItemResult]) -> None:
        """Transfers as PostTransfers or CommitHold answered them."""
        totals = dict.fromkeys(COUNTED_CODES.values(), 0)
        for result in results:
            posting = result.posting
            if result.status is Status.POSTED and posting is not None and posting.code in COUNTED_CODES:
                totals[COUNTED_CODES[posting.code]] += posting.amount_points
        for kind, points in totals.items():
            self._add(kind, points)

    def credited(self, requests: Sequence[TransferRequest], statuses: Sequence[Status]) -> None:
        """Credits as PostCredits answered them (its columns: one status per request, in order)."""
        totals = dict.fromkeys(COUNTED_CODES.values(), 0)
        for request, status in zip(requests, statuses, strict=True):
            if status is Status.POSTED and request.code in COUNTED_CODES:
                totals[COUNTED_CODES[request.code]] += request.amount_points
        for kind, points in totals.items():
            self._add(kind, points)

    def expired(self, points: int) -> None:
        self._add("expired", points)

    def checked(self, outcome: Conservation) -> None:
        """A conservation check's outcome (CheckConservation, which operators run on a schedule)."""
        self._balanced.set(1 if outcome.balanced else 0, self._attributes)
        self._outstanding.set(outcome.outstanding_points, self._attributes)
