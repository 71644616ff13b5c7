"""Request ids: the caller's X-Request-Id (or a fresh one) is the idempotency key of a mutation downstream."""

from __future__ import annotations

import hashlib
import re
import uuid

from ops_api.domain.staff import Staff
from ops_api.problems import Problem

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


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


def idempotency_key(staff: Staff, rid: str) -> str:
    """The request id as the downstream services' idempotency key, scoped to the staff member who sent it."""
    return f"ops:{staff.user_id}:{rid}"


def compact_key(staff: Staff, rid: str) -> str:
    """The same key for callers with a narrower id alphabet (the gateway's transfer ids: 1-64 of [A-Za-z0-9._-])."""
    return "ops-" + hashlib.sha256(idempotency_key(staff, rid).encode("utf-8")).hexdigest()[:40]
