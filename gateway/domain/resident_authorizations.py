"""The resident's own say: an operation that moves a resident's points out of their region (a cross-region transfer,
a redemption anywhere) needs the resident's authorization for exactly that operation, issued by the source account's
home identity service (IssueResidentAuthorization, docs/adr/0205) and checked here.

This module holds the rules on the verified claims: which issuer must have signed, and that every claim binding the
token to the operation (account, destination, amount, request id, reward and quantity) matches the request. Who
asked (the resident's platform, or counter staff named in the token) is what the gateway records with the operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service_kit.errors import PermissionDenied

AUDIENCE = "carbon-account/gateway"
CROSS_REGION_TRANSFER = "cross_region_transfer"
REDEEM_ANYWHERE = "redeem_anywhere"
FIELD = "resident_authorization"


def issuer_of(region_code: str) -> str:
    """The identity service that authorizes moves of a region's accounts: its SPIFFE ID (the token's iss and kid)."""
    return f"spiffe://carbon-account/region/{region_code}/identity"


@dataclass(frozen=True)
class Operation:
    """What the request asks for, as the token must name it."""

    op: str
    account: str
    to_account: str
    request_id: str
    amount_points: int
    reward_id: str = ""
    quantity: int = 0

    def expected_claims(self) -> dict[str, object]:
        claims: dict[str, object] = {
            "op": self.op,
            "sub": self.account,
            "to_account": self.to_account,
            "request_id": self.request_id,
            "amount_points": self.amount_points,
        }
        if self.op == REDEEM_ANYWHERE:
            claims.update({"reward_id": self.reward_id, "quantity": self.quantity})
        return claims


def mismatch(claim: str, message: str) -> PermissionDenied:
    return PermissionDenied(
        "RESIDENT_AUTHORIZATION_MISMATCH",
        f"{FIELD}: {message}; ask the resident's identity service for an authorization of this operation",
        {"field": FIELD, "claim": claim},
    )


def authorized_by(claims: Mapping[str, Any], operation: Operation) -> str:
    """Who asked on the resident's behalf ("platform:<code>" or "staff:<staff id>"), once every binding claim
    matches the operation; PERMISSION_DENIED RESIDENT_AUTHORIZATION_MISMATCH naming the first claim that does not."""
    for claim, expected in operation.expected_claims().items():
        if claims.get(claim) != expected:
            raise mismatch(claim, f"the authorization's {claim} is not this request's")
    platform = claims.get("platform")
    actor = claims.get("act")
    staff = actor.get("sub") if isinstance(actor, Mapping) else None
    if isinstance(platform, str) and platform and staff is None:
        return f"platform:{platform}"
    if isinstance(staff, str) and staff and not platform:
        return f"staff:{staff}"
    raise mismatch("platform", "the authorization names neither one platform nor one staff member")
