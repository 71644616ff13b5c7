"""Redeem anywhere: a region-B reward paid with points held in region A, in one call.

CREATED --transfer A->B (ra.<id>) committed--> TRANSFERRED --Redeem in B (request ra.<id>)--> REDEEMED
   transfer there released: FAILED (nothing moved)
   redemption refused: UNWINDING --transfer B->A (ra.<id>.back) carrying the original lots--> UNWOUND
   transfer back refused: STRANDED (the points stay in the person's own account in B; alert)
See docs/adr/0602-redeem-anywhere.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.domain.transfers import TransferRequest
from service_kit.errors import InvalidArgument

# Shorter than a transfer id: the derived transfer ids ("ra.<id>.back") must still fit in 64 characters.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,56}$")
MAX_QUANTITY = 1000


class RedeemAnywhereState(StrEnum):
    CREATED = "CREATED"  # recorded; the transfer there is (being) made
    TRANSFERRED = "TRANSFERRED"  # the points are in the target account; redeem next
    REDEEMED = "REDEEMED"  # done: vouchers issued
    UNWINDING = "UNWINDING"  # the redemption was refused; the points go back with their lots
    UNWOUND = "UNWOUND"  # done: refused, points back in the source account
    FAILED = "FAILED"  # done: the transfer there was refused, nothing moved
    STRANDED = "STRANDED"  # done: the transfer back was refused; the points stay in the person's target account


REDEEM_ANYWHERE_FINISHED = frozenset(
    {
        RedeemAnywhereState.REDEEMED,
        RedeemAnywhereState.UNWOUND,
        RedeemAnywhereState.FAILED,
        RedeemAnywhereState.STRANDED,
    }
)


@dataclass(frozen=True)
class RedeemAnywhereRequest:
    request_id: str
    source_account: str
    target_account: str
    reward_id: str
    quantity: int

    def fingerprint(self) -> str:
        """What makes two requests with one request id "the same body"."""
        body = f"{self.request_id}|{self.source_account}|{self.target_account}|{self.reward_id}|{self.quantity}"
        return hashlib.sha256(body.encode()).hexdigest()

    def there(self, amount_points: int) -> TransferRequest:
        """The transfer that pays: the person's points from the source account to the target account."""
        return TransferRequest(
            transfer_id=f"ra.{self.request_id}",
            from_account=self.source_account,
            to_account=self.target_account,
            amount_points=amount_points,
        )

    def back(self, amount_points: int) -> TransferRequest:
        """The transfer that unwinds a refused redemption: the points back to the source account."""
        return TransferRequest(
            transfer_id=f"ra.{self.request_id}.back",
            from_account=self.target_account,
            to_account=self.source_account,
            amount_points=amount_points,
        )

    @property
    def redeem_request_id(self) -> str:
        """The id rewards in B deduplicates the redemption by."""
        return f"ra.{self.request_id}"


@dataclass
class RedeemAnywhere:
    """A stored redeem-anywhere request and how far it got."""

    request: RedeemAnywhereRequest
    caller_id: str
    amount_points: int
    state: RedeemAnywhereState
    created_at: datetime
    failure_reason: str = ""
    redemption_id: str = ""
    voucher_codes: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    attempts: int = 0
    authorized_by: str = ""  # who asked on the resident's behalf, as on the transfers it makes

    @property
    def finished(self) -> bool:
        return self.state in REDEEM_ANYWHERE_FINISHED


def validate_redeem_anywhere(request: RedeemAnywhereRequest) -> None:
    """Raises InvalidArgument naming the first bad field. Account numbers are checked by the registry."""
    if not REQUEST_ID_PATTERN.match(request.request_id):
        raise InvalidArgument("request_id", "must be 1-56 characters of A-Z a-z 0-9 . _ -")
    if not request.reward_id or len(request.reward_id) > 64:
        raise InvalidArgument("reward_id", "must be 1-64 characters")
    if not 1 <= request.quantity <= MAX_QUANTITY:
        raise InvalidArgument("quantity", f"must be between 1 and {MAX_QUANTITY}")
    if request.source_account == request.target_account:
        raise InvalidArgument("target_account", "must differ from source_account")
