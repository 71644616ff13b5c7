"""Resident authorizations: the resident's own say before their points move (a cross-region transfer, a redemption
in another region). The rules of who may obtain one for what, and the claims of the signed token (ADR 0205).

The token is the contract with the gateway, which verifies it: its claims are documented on
IdentityService.IssueResidentAuthorization in protos/carbon/identity/v1/identity_service.proto.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from identity_svc.domain.accounts import validate_account_number, validate_identifier
from identity_svc.domain.requesters import Requester
from service_kit.errors import InvalidArgument, PermissionDenied

AUDIENCE = "carbon-account/gateway"
LIFETIME = timedelta(minutes=5)
# The gateway's bound on a cross-region amount.
MAX_AMOUNT_POINTS = 10_000_000_000
MAX_QUANTITY = 1_000
REWARD_ID_MAX_CHARS = 64


class ResidentOperation(IntEnum):
    """Mirrors carbon.identity.v1.ResidentOperation."""

    CROSS_REGION_TRANSFER = 1
    REDEEM_ANYWHERE = 2

    @property
    def claim(self) -> str:
        """The op claim: the operation's name in lower case."""
        return self.name.lower()


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated request for a resident authorization; quantity is 0 for a transfer, at least 1 for a redemption."""

    request_id: str
    account_number: str
    operation: ResidentOperation
    amount_points: int
    to_account: str
    reward_id: str
    quantity: int
    staff_id: str


def validate_authorization_request(
    *,
    request_id: str,
    account_number: str,
    operation: int,
    amount_points: int,
    to_account: str,
    reward_id: str,
    quantity: int,
    staff_id: str,
) -> AuthorizationRequest:
    validate_identifier(request_id, "request_id")
    validate_account_number(account_number)
    if operation not in ResidentOperation._value2member_map_:
        raise InvalidArgument("operation", "must be a known resident operation", reason="INVALID_OPERATION")
    chosen = ResidentOperation(operation)
    if not 1 <= amount_points <= MAX_AMOUNT_POINTS:
        raise InvalidArgument("amount_points", f"must be 1-{MAX_AMOUNT_POINTS:,}", reason="INVALID_AMOUNT")
    validate_account_number(to_account, "to_account")
    if to_account == account_number:
        raise InvalidArgument("to_account", "must be another account than account_number")
    if staff_id:
        validate_identifier(staff_id, "staff_id")
    if chosen is ResidentOperation.REDEEM_ANYWHERE:
        validate_identifier(reward_id, "reward_id")
        if len(reward_id) > REWARD_ID_MAX_CHARS:
            raise InvalidArgument("reward_id", f"must be at most {REWARD_ID_MAX_CHARS} characters")
        if not 0 <= quantity <= MAX_QUANTITY:
            raise InvalidArgument("quantity", f"must be 1-{MAX_QUANTITY:,} (0 means 1)", reason="INVALID_QUANTITY")
        quantity = quantity or 1
    else:
        if reward_id:
            raise InvalidArgument("reward_id", "is only used for a redemption anywhere")
        if quantity:
            raise InvalidArgument("quantity", "is only used for a redemption anywhere", reason="INVALID_QUANTITY")
    return AuthorizationRequest(
        request_id=request_id,
        account_number=account_number,
        operation=chosen,
        amount_points=amount_points,
        to_account=to_account,
        reward_id=reward_id,
        quantity=quantity,
        staff_id=staff_id,
    )


@dataclass(frozen=True)
class Asker:
    """On whose word the token is issued: the resident's own platform, or counter staff acting for the resident."""

    platform: str = ""
    staff_id: str = ""


def asker(requester: Requester, staff_id: str, bound_platforms: Collection[str]) -> Asker:
    """The gateway speaking for a platform that holds a binding on the account, or the ops API naming the staff
    member at the counter; anyone else is refused."""
    if requester.is_gateway:
        if staff_id:
            raise InvalidArgument("staff_id", "is only for the ops API acting for counter staff")
        if not requester.platform or requester.platform not in bound_platforms:
            raise PermissionDenied(
                "PLATFORM_NOT_BOUND",
                "only the resident's own platform (one holding a binding on the account) may ask for this",
                {"platform": requester.platform},
            )
        return Asker(platform=requester.platform)
    if requester.is_ops_api:
        if not staff_id:
            raise InvalidArgument("staff_id", "is required when the ops API acts for counter staff")
        return Asker(staff_id=staff_id)
    raise PermissionDenied(
        "CALLER_CANNOT_AUTHORIZE",
        "only the gateway speaking for a platform or the ops API acting for staff obtain resident authorizations",
        {"caller": requester.service},
    )


@dataclass(frozen=True)
class Issuance:
    """One token's own values; the same issuance signed again gives the same token (Ed25519 is deterministic)."""

    token_id: str
    issued_at: datetime
    expires_at: datetime

    def valid_at(self, now: datetime) -> bool:
        return now < self.expires_at


def claims(issuer: str, request: AuthorizationRequest, by: Asker, issuance: Issuance) -> dict[str, object]:
    """The token's claims, exactly as documented on IssueResidentAuthorization (the gateway's contract)."""
    body: dict[str, object] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": request.account_number,
        "op": request.operation.claim,
        "amount_points": request.amount_points,
        "to_account": request.to_account,
        "request_id": request.request_id,
    }
    if request.operation is ResidentOperation.REDEEM_ANYWHERE:
        body["reward_id"] = request.reward_id
        body["quantity"] = request.quantity
    body["iat"] = int(issuance.issued_at.timestamp())
    body["exp"] = int(issuance.expires_at.timestamp())
    body["jti"] = issuance.token_id
    if by.platform:
        body["platform"] = by.platform
    else:
        body["act"] = {"sub": by.staff_id}
    return body
