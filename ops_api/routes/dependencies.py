"""What a route asks FastAPI for: the context, the authenticated (and rate-limited) staff member, the request id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ops_api.context import OpsContext
from ops_api.domain.staff import Staff
from ops_api.problems import Problem
from ops_api.service.staff import authenticate


def ops(request: Request) -> OpsContext:
    context: OpsContext = request.app.state.ops
    return context


_bearer = HTTPBearer(auto_error=False, description="A staff token from `python -m ops_api create-token`.")


def current_staff(
    request: Request,
    context: Annotated[OpsContext, Depends(ops)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Staff:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(
            401, "CREDENTIALS_MISSING", "send `Authorization: Bearer <token>`", headers={"WWW-Authenticate": "Bearer"}
        )
    staff = authenticate(context.engine, context.clock(), credentials.credentials)
    context.limiter.check(staff.token_id)
    request.state.staff = staff
    return staff


def request_id(request: Request) -> str:
    """The request id the middleware took from X-Request-Id (or made)."""
    value: str = request.state.request_id
    return value


Ctx = Annotated[OpsContext, Depends(ops)]
CurrentStaff = Annotated[Staff, Depends(current_staff)]
RequestId = Annotated[str, Depends(request_id)]
