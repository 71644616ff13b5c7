"""A guardian of another region (PIPL art. 31, ADR 0209): a region's identity opening or changing the consents of a
child's account asks whether the named guardian's account, in its home region, exists, is open, verified and held by
an adult, and whether the platform acting for the guardian is bound to it. The gateway routes the question by the
account number and passes on the home region's answer; no ID number, phone number or name crosses regions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from carbon.identity.v1 import identity_service_pb2 as identity
from gateway.clients import RegionClients, RemoteError, call
from service_kit.errors import InvalidArgument

log = logging.getLogger("carbon.gateway.guardians")

PLATFORM_MAX_CHARS = 64


@dataclass(frozen=True)
class GuardianStanding:
    standing: int  # carbon.identity.v1.GuardianStanding
    platform_bound: bool
    region_code: str


def guardian_standing(
    clients: RegionClients, asking_region: str, guardian_account_number: str, platform: str, timeout_s: float
) -> GuardianStanding:
    """The guardian's home region's answer, or INVALID_ARGUMENT (the account number, the platform), FAILED_PRECONDITION
    REGION_NOT_FEDERATED, UNAVAILABLE REGION_UNAVAILABLE naming the region (retry)."""
    if len(platform) > PLATFORM_MAX_CHARS or not platform.isprintable():
        raise InvalidArgument("platform", f"must be printable, at most {PLATFORM_MAX_CHARS} characters")
    region = clients.registry.route(guardian_account_number, "guardian_account_number").region_code
    request = identity.GetGuardianStandingRequest(account_number=guardian_account_number, platform=platform)
    try:
        answer = call(region, clients.identity(region).GetGuardianStanding, request, timeout_s)
    except RemoteError as error:
        if error.final and error.code.name == "INVALID_ARGUMENT":
            field = "platform" if error.metadata.get("field") == "platform" else "guardian_account_number"
            raise InvalidArgument(field, error.message, error.reason) from None
        log.warning("guardian's region did not answer", extra={"region": region, "asking_region": asking_region})
        raise error.as_unavailable() from None
    return GuardianStanding(answer.standing, answer.platform_bound, region)
