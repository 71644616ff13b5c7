"""The audit log: every mutation with who, what and how it ended; no personal data; read back by admins."""

from __future__ import annotations

from sqlalchemy import select

from ops_api.store.tables import audit_log
from tests.ops_api.ops_support import Ops


def test_every_mutation_is_audited_with_who_what_and_outcome(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account)
    ops.post("zj-staff", f"/v1/accounts/{account}/redemptions", {"reward_id": "no-such-reward"})
    with ops.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(audit_log).where(audit_log.c.actor == "zj-staff"))]
    actions = {(r["action"], r["outcome"]) for r in rows}
    assert ("account.open", "ok") in actions and ("community_event.record", "ok") in actions
    assert any(action == "reward.redeem" and outcome != "ok" for action, outcome in actions)
    assert all("王秀英" not in r["details_json"] for r in rows), "personal data must stay out of the audit log"
    entries = ops.get("admin", "/v1/audit-log", actor="zj-staff", page_size=2).json()
    assert len(entries["entries"]) == 2 and entries["next_page_token"]
    assert ops.get("viewer", "/v1/audit-log").status_code == 403
