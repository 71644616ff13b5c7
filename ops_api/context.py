"""What every route needs, built once in create_app(): settings, the ops database, gRPC clients, the rate limiter.

Also the FastAPI dependencies: the authenticated staff member behind a request, and the request id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from ops_api.auth import Staff, authenticate
from ops_api.clients import Services
from ops_api.problems import Problem
from ops_api.ratelimit import RateLimiter
from ops_api.settings import OpsSettings

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OpsContext:
    settings: OpsSettings
    engine: Engine
    services: Services
    limiter: RateLimiter
    clock: Callable[[], datetime] = utc_now


def request_id_from_header(value: str | None) -> str:
    """The caller's X-Request-Id (the idempotency key of a mutation), or a fresh one."""
    if value is None or value == "":
        return uuid.uuid4().hex
    if not REQUEST_ID.match(value):
        raise Problem(
            400,
            "INVALID_ARGUMENT",
            "X-Request-Id: 1-64 characters: letters, digits, '.', '_', ':' or '-'",
            {"field": "X-Request-Id"},
        )
    return value


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
    value: str = request.state.request_id
    return value


Ctx = Annotated[OpsContext, Depends(ops)]
CurrentStaff = Annotated[Staff, Depends(current_staff)]
RequestId = Annotated[str, Depends(request_id)]


def idempotency_key(staff: Staff, rid: str) -> str:
    """The request id as the downstream services' idempotency key, scoped to the staff member who sent it."""
    return f"ops:{staff.user_id}:{rid}"


def compact_key(staff: Staff, rid: str) -> str:
    """The same key for callers with a narrower id alphabet (the gateway's transfer ids: 1-64 of [A-Za-z0-9._-])."""
    import hashlib

    return "ops-" + hashlib.sha256(idempotency_key(staff, rid).encode("utf-8")).hexdigest()[:40]
