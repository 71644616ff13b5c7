"""Idempotency keys of the operations without a table of their own keyed by request id, with the first response.

A response is kept as a JSON document of the domain object the first call returned (a Reward, a Voucher), so a retry
returns exactly that, not the current state.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, select, update

from rewards_svc.store.tables import insert_ignore, request_table

T = TypeVar("T")


@dataclass(frozen=True)
class Claimed:
    """A request id seen before: the body's fingerprint and the first response ('' while none was kept)."""

    fingerprint: str
    response: str


def claim(
    connection: Connection, operation: str, request_id: str, fingerprint: str, result_ref: str, now: datetime
) -> Claimed | None:
    """Records a request id; None when it is new (this transaction owns it), else what the first request left.

    A concurrent first request with the same id makes this wait until it commits or rolls back.
    """
    row = {
        "operation": operation,
        "request_id": request_id,
        "fingerprint": fingerprint,
        "result_ref": result_ref,
        "created_at": now,
        "response": "",
    }
    if insert_ignore(connection, request_table, [row]) == 1:
        return None
    stored = connection.execute(
        select(request_table.c.fingerprint, request_table.c.response).where(
            and_(request_table.c.operation == operation, request_table.c.request_id == request_id)
        )
    ).one()
    return Claimed(str(stored.fingerprint), str(stored.response))


def keep_response(connection: Connection, operation: str, request_id: str, response: object) -> None:
    """Stores the response of a request claimed in this transaction (a dataclass of the domain)."""
    connection.execute(
        update(request_table)
        .where(and_(request_table.c.operation == operation, request_table.c.request_id == request_id))
        .values(response=encode(response))
    )


def encode(value: object) -> str:
    assert dataclasses.is_dataclass(value) and not isinstance(value, type)
    fields = {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value) if field.init}
    return json.dumps(fields, sort_keys=True, ensure_ascii=False)


def decode(document: str, kind: type[T]) -> T:
    """The dataclass back from encode(); datetimes and tuples come back as they went in."""
    raw = json.loads(document)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):  # type: ignore[arg-type]
        value = raw[field.name]
        annotation = str(field.type)
        if value is not None and "datetime" in annotation:
            value = datetime.fromisoformat(value)
        elif isinstance(value, list) and annotation.startswith("tuple"):
            value = tuple(value)
        values[field.name] = value
    return kind(**values)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value
