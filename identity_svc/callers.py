"""Who is calling identity_svc, as a Requester: the calling service's verified identity and, only when that service
is the national gateway, the external caller and platform it speaks for (x-carbon-caller, x-carbon-caller-platform).

The one place identity reads it, so that the source can change without touching the rules. Until the kit's verified
caller (service_kit.access.current_caller(), issue 13) is on main, no call carries a verified identity, so every call
is UNIDENTIFIED: bindings are recorded without a caller, and resident authorizations are refused (fail closed).
"""

from __future__ import annotations

import grpc

from identity_svc.domain.requesters import UNIDENTIFIED, Requester


def requester(context: grpc.ServicerContext) -> Requester:
    return UNIDENTIFIED
