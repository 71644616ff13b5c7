"""The audit log: one row per mutation (unique on actor, request id and action), read newest first."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select

from ops_api.domain.audit import AuditEntry
from ops_api.store.tables import audit_log


def insert_entry(conn: Connection, entry: AuditEntry) -> None:
    """Raises IntegrityError when the same mutation (actor, request id, action) is recorded already."""
    conn.execute(
        insert(audit_log).values(
            at=entry.at,
            actor=entry.actor,
            role=entry.role,
            action=entry.action,
            target=entry.target,
            reason=entry.reason,
            request_id=entry.request_id,
            outcome=entry.outcome,
            details_json=json.dumps(dict(entry.details), ensure_ascii=False, default=str),
        )
    )


def entries_page(conn: Connection, before_id: int, limit: int, actor: str, action: str) -> list[dict[str, Any]]:
    """Entries newest first, below `before_id` (0: from the newest), of one actor and action when given; each with its
    id, times in ISO format and its details parsed."""
    query = select(audit_log).order_by(audit_log.c.audit_id.desc()).limit(limit)
    if before_id:
        query = query.where(audit_log.c.audit_id < before_id)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["at"] = row["at"].isoformat()
        row["details"] = json.loads(row.pop("details_json") or "{}")
    return rows
