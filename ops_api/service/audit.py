"""Recording mutations in the audit log (the rules: ops_api.domain.audit), and reading it back.

A mutation is recorded whether it succeeded or was refused; a retry with the same X-Request-Id is the same mutation
and adds no second entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from ops_api.context import OpsContext
from ops_api.domain.audit import OUTCOME_OK, AuditEntry, audit_entry
from ops_api.domain.staff import Staff
from ops_api.problems import Problem
from ops_api.store import audit as store

T = TypeVar("T")


def record(context: OpsContext, entry: AuditEntry) -> None:
    try:
        with context.engine.begin() as conn:
            store.insert_entry(conn, entry)
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
        record(context, audit_entry(context.clock(), staff, rid, action, target, problem.reason, reason, details))
        raise
    record(context, audit_entry(context.clock(), staff, rid, action, target, OUTCOME_OK, reason, details))
    return result


def list_entries(
    context: OpsContext, page_size: int, after_id: int, actor: str = "", action: str = ""
) -> tuple[list[dict[str, Any]], int]:
    """Newest first; returns (rows, last id for the next page or 0)."""
    with context.engine.connect() as conn:
        rows = store.entries_page(conn, after_id, page_size + 1, actor, action)
    more = len(rows) > page_size
    rows = rows[:page_size]
    return rows, (int(rows[-1]["audit_id"]) if more and rows else 0)
