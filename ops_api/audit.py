"""The audit log: every mutation, who did it, when, what, to what, why, and how it ended.

A mutation is recorded whether it succeeded or was refused (outcome "ok" or the problem's reason). A retry with the
same X-Request-Id is the same mutation: one row (unique on actor, request id, action).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ops_api.auth import Staff
from ops_api.context import OpsContext
from ops_api.problems import Problem
from ops_api.store import audit_log

T = TypeVar("T")


def record(
    context: OpsContext,
    staff: Staff,
    rid: str,
    action: str,
    target: str,
    outcome: str,
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    try:
        with context.engine.begin() as conn:
            conn.execute(
                insert(audit_log).values(
                    at=context.clock(),
                    actor=staff.user_id,
                    role=staff.role.value,
                    action=action,
                    target=target[:200],
                    reason=reason,
                    request_id=rid,
                    outcome=outcome[:64],
                    details_json=json.dumps(dict(details or {}), ensure_ascii=False, default=str),
                )
            )
    except IntegrityError:
        pass  # the same request, retried: already recorded


def audited(
    context: OpsContext,
    staff: Staff,
    rid: str,
    action: str,
    target: str,
    run: Callable[[], T],
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> T:
    """Runs a mutation and records it with its outcome; problems are recorded, then raised."""
    try:
        result = run()
    except Problem as problem:
        record(context, staff, rid, action, target, problem.reason, reason, details)
        raise
    record(context, staff, rid, action, target, "ok", reason, details)
    return result


def list_entries(
    context: OpsContext, page_size: int, after_id: int, actor: str = "", action: str = ""
) -> tuple[list[dict[str, Any]], int]:
    """Newest first; returns (rows, last id for the next page or 0)."""
    query = select(audit_log).order_by(audit_log.c.audit_id.desc()).limit(page_size + 1)
    if after_id:
        query = query.where(audit_log.c.audit_id < after_id)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    with context.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > page_size
    rows = rows[:page_size]
    for row in rows:
        row["at"] = row["at"].isoformat()
        row["details"] = json.loads(row.pop("details_json") or "{}")
    return rows, (int(rows[-1]["audit_id"]) if more and rows else 0)
