"""Across regions through the gateway: a cross-region transfer and the settlement report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops_api.ops_support import Ops


def test_cross_region_transfer_and_settlement_through_the_gateway(ops: Ops) -> None:
    source = ops.open_account("zj-staff", "330000")
    ops.plant_trees(source)
    target = ops.open_account("bj-staff", "110000", consent=False, person=ops.last_person)
    # Both regions share the person's data in the transfer: the resident consents at each counter (ADR 0610).
    for staff, account in (("zj-staff", source), ("bj-staff", target)):
        sharing = {"category": "CROSS_REGION_SHARING", "grant": True}
        granted = ops.post(staff, f"/v1/accounts/{account}/consents", sharing)
        assert granted.status_code == 200, granted.text
    body = {"from_account": source, "to_account": target, "amount_points": 150, "reason": "resident moved to Beijing"}
    created = ops.post("op1", "/v1/cross-region-transfers", body)
    assert created.status_code in {201, 501}, created.text
    if created.status_code == 501:
        assert created.json()["reason"] == "UNIMPLEMENTED"
        return
    transfer = created.json()["transfer"]
    assert transfer["state"] == "CROSS_REGION_TRANSFER_STATE_COMMITTED", transfer
    got = ops.get("viewer", f"/v1/cross-region-transfers/{transfer['transfer_id']}").json()["transfer"]
    assert got["amount_points"] == 150
    assert ops.get("viewer", f"/v1/accounts/{target}/balance").json()["balance"]["available_points"] == 150
    now = datetime.now(UTC)
    report = ops.get("viewer", "/v1/settlement-report", period_start=(now - timedelta(hours=1)).isoformat(),
                     period_end=(now + timedelta(hours=1)).isoformat())  # fmt: skip
    assert report.status_code in {200, 501}, report.text
    listed = ops.get("viewer", "/v1/cross-region-transfers", account_number=source)
    assert listed.status_code in {200, 501}, listed.text
