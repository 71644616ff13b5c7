"""Stand-ins for a client's gRPC stub (set as its `_stub`): they answer in process, with no server, so a test can
script what identity or the ledger says and see what was asked."""

from __future__ import annotations

from typing import Any

from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ledger.v1 import ledger_service_pb2 as lpb


class CapturingLedger:
    """A ledger stub for a client's `_stub`: answers PostCredits with every credit posted except those whose id is in
    `refuse`, and keeps the last request."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.request = lpb.PostCreditsRequest()
        self.refuse = refuse

    def PostCredits(self, request: lpb.PostCreditsRequest, timeout: float) -> lpb.PostCreditsResponse:
        self.request = request
        ids = [transfer_id for group in request.groups for transfer_id in group.transfer_ids]
        return lpb.PostCreditsResponse(
            statuses=[lpb.TRANSFER_STATUS_FAILED if i in self.refuse else lpb.TRANSFER_STATUS_POSTED for i in ids],
            lot_ids=["" if i in self.refuse else "7" for i in ids],
            posted_at_us=[0 if i in self.refuse else 1 for i in ids],
            failures=[
                lpb.CreditFailure(index=n, reason="UNKNOWN_ACCOUNT", message=f"{i}: no such account")
                for n, i in enumerate(ids)
                if i in self.refuse
            ],
        )


class ConsentingIdentity:
    """Identity's CheckConsentColumns answering yes to every question."""

    def CheckConsentColumns(self, request: Any, timeout: float) -> Any:
        count = len(request.account_numbers)
        return ipb.CheckConsentColumnsResponse(allowed=[True] * count, reasons=[""] * count)
