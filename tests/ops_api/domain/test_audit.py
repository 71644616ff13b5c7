"""Audit entries: who, in which role, what, and outcomes and targets cut to what the log keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from ops_api.domain.audit import MAX_OUTCOME_LENGTH, MAX_TARGET_LENGTH, audit_entry
from ops_api.domain.staff import Role, Staff

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_an_entry_names_the_actor_and_role_and_cuts_long_values() -> None:
    staff = Staff(user_id="op1", role=Role.OPERATOR)
    entry = audit_entry(NOW, staff, "r1", "reward.redeem", "t" * 500, "X" * 100, "why", {"quantity": 1})
    assert (entry.actor, entry.role, entry.action, entry.request_id, entry.reason) == (
        "op1", "operator", "reward.redeem", "r1", "why",
    )  # fmt: skip
    assert len(entry.target) == MAX_TARGET_LENGTH and len(entry.outcome) == MAX_OUTCOME_LENGTH
    assert entry.details == {"quantity": 1}
