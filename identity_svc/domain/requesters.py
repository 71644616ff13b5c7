"""Who asked for a change, as identity records it and as its finer rules (resident authorizations) judge it."""

from __future__ import annotations

from dataclasses import dataclass

# The national services' identities (design of issue 13: SPIFFE-style URIs), as the kit verifies them.
GATEWAY_IDENTITY = "spiffe://carbon-account/national/gateway"
OPS_API_IDENTITY = "spiffe://carbon-account/national/ops-api"


def regional_identity(region_code: str, kind: str) -> str:
    """The SPIFFE ID of a regional service, e.g. spiffe://carbon-account/region/330000/identity."""
    return f"spiffe://carbon-account/region/{region_code}/{kind}"


@dataclass(frozen=True)
class Requester:
    """The calling service's verified identity (empty when the call carried none) and, only when that service is the
    national gateway, the external caller it speaks for and the channel platform that caller is (the gateway's
    x-carbon-caller and x-carbon-caller-platform; from anyone else they are ignored)."""

    service: str = ""
    caller: str = ""
    platform: str = ""

    @property
    def is_gateway(self) -> bool:
        return self.service == GATEWAY_IDENTITY

    @property
    def is_ops_api(self) -> bool:
        return self.service == OPS_API_IDENTITY


def requester(service: str, caller: str = "", platform: str = "") -> Requester:
    """Builds a Requester, dropping forwarded values unless the direct caller is the gateway."""
    if service != GATEWAY_IDENTITY:
        return Requester(service=service)
    return Requester(service=service, caller=caller, platform=platform)


# A call that carried no identity (tests of the rules, tools run beside the service).
UNIDENTIFIED = Requester()
