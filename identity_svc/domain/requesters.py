"""Who asked for a change, as identity records it and as its finer rules (resident authorizations) judge it."""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.identities import GATEWAY, OPS_API


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
        return self.service == GATEWAY

    @property
    def is_ops_api(self) -> bool:
        return self.service == OPS_API


def requester(service: str, caller: str = "", platform: str = "") -> Requester:
    """Builds a Requester, dropping forwarded values unless the direct caller is the gateway."""
    if service != GATEWAY:
        return Requester(service=service)
    return Requester(service=service, caller=caller, platform=platform)


# A call that carried no identity (tests of the rules, tools run beside the service).
UNIDENTIFIED = Requester()
