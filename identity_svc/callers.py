"""Who is calling identity_svc, as a Requester: the calling service's identity as the kit verified it
(service_kit.access.current_caller(): the mTLS certificate's SPIFFE ID or the service token) and, only when that
service is the national gateway, the external caller and platform it speaks for (x-carbon-caller,
x-carbon-caller-platform). The one place identity reads it, so that the source can change without touching the rules.
"""

from __future__ import annotations

import grpc

from identity_svc.domain.requesters import Requester
from identity_svc.domain.requesters import requester as make_requester
from service_kit.access import current_caller
from service_kit.errors import PermissionDenied


def requester(context: grpc.ServicerContext) -> Requester:
    caller = current_caller()
    return make_requester(caller.identity, caller.caller, caller.platform)


def require_ops_api_for_id_number(field: str) -> None:
    """Looking an account up by a resident ID number is the counter's (the ops API's) alone: a platform knows its own
    users by their binding, and an ID number must not become a way to find anyone's account."""
    caller = current_caller()
    if not caller.is_ops_api:
        raise PermissionDenied(
            "CALLER_NOT_ALLOWED",
            f"{field}: {caller.identity or 'a caller without identity'} may not look accounts up by ID number",
            {"caller": caller.identity, "field": field, "method": "/carbon.identity.v1.IdentityService/ResolveAccount"},
        )
