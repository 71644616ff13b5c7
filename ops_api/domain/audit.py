"""What the audit log records: every mutation, who did it, when, what, to what, why, and how it ended.

A mutation is recorded whether it succeeded or was refused (outcome "ok" or the problem's reason). A retry with the
same X-Request-Id is the same mutation: one entry. Personal data (names, ID numbers, phones) never goes in: callers
name targets by account number, region or id, and keep such fields out of the details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ops_api.domain.staff import Staff

OUTCOME_OK = "ok"
MAX_TARGET_LENGTH = 200
MAX_OUTCOME_LENGTH = 64


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    reason: str
    request_id: str
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)


def audit_entry(
    at: datetime,
    staff: Staff,
    rid: str,
    action: str,
    target: str,
    outcome: str,
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The entry for one mutation; long targets and outcomes are cut to what the log keeps."""
    return AuditEntry(
        at=at,
        actor=staff.user_id,
        role=staff.role.value,
        action=action,
        target=target[:MAX_TARGET_LENGTH],
        reason=reason,
        request_id=rid,
        outcome=outcome[:MAX_OUTCOME_LENGTH],
        details=dict(details or {}),
    )
