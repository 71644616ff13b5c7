"""Retries answer as the first request did: operations without a table of their own keyed by request id claim the id
in idempotency_keys and keep their first response there (docs/adr/0301)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine

from rewards_svc import store
from service_kit.errors import AlreadyExists, NotFound

T = TypeVar("T")


def idempotency_reused(request_id: str) -> AlreadyExists:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        f"request_id {request_id} was used for a different request",
        {"request_id": request_id},
    )


def first_response(
    claimed: store.idempotency_keys.Claimed,
    digest: str,
    request_id: str,
    kind: type[T],
    current: Callable[[], T | None],
) -> T:
    """What the first request with this id returned; a different body under the same id is refused.

    A request claimed before responses were kept (migration rewards_0002) gets the current state, as it did then.
    """
    if claimed.fingerprint != digest:
        raise idempotency_reused(request_id)
    if claimed.response:
        return store.idempotency_keys.decode(claimed.response, kind)
    found = current()
    if found is None:
        raise NotFound("NOT_FOUND", f"request {request_id} left nothing to return")
    return found


def once(
    engine: Engine,
    operation: str,
    *,
    now: datetime,
    request_id: str,
    digest: str,
    result_ref: str,
    kind: type[T],
    current: Callable[[Connection], T | None],
    change: Callable[[Connection, datetime], T],
) -> T:
    """Runs `change` once per (operation, request id), in one transaction with the claim and the kept response; a
    retry with the same body fingerprint (`digest`) gets the first response, `current` only for claims older than
    kept responses. `result_ref` names what the request acts on. A change that raises rolls back with its claim, so a
    corrected retry may use the id."""
    with engine.begin() as connection:
        claimed = store.idempotency_keys.claim(connection, operation, request_id, digest, result_ref, now)
        if claimed is not None:
            return first_response(claimed, digest, request_id, kind, lambda: current(connection))
        result = change(connection, now)
        store.idempotency_keys.keep_response(connection, operation, request_id, result)
    return result
