"""Across regions through the gateway: a cross-region transfer and the settlement report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema

from service_kit.clock import china_day, system_clock
from tests.ops_api.ops_support import Ops

SCHEMA = json.loads(
    (Path(__file__).parents[3] / "docs/contract/personal-data-export.schema.json").read_text(encoding="utf-8")
)


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


def test_national_figures_for_operators_sum_the_regions(ops: Ops) -> None:
    account = ops.open_account("zj-staff", "330000")
    ops.plant_trees(account)
    today = china_day(system_clock())
    answer = ops.get("viewer", "/v1/national-figures", year=today.year, month=today.month)
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    regions = {region["region_code"]: region for region in figures["regions"]}
    zhejiang = regions["330000"]["points"]
    assert zhejiang["issued_points"] >= 200
    assert "tree_planting" in {b["behaviour"] for b in zhejiang["by_behaviour"]}
    national = figures["national"]
    assert national["points"]["issued_points"] == sum(r["points"]["issued_points"] for r in figures["regions"])
    assert national["accounts_open_at_end"] == sum(r["accounts_open_at_end"] for r in figures["regions"]) >= 1
    refused = ops.get("zj-staff", "/v1/national-figures", year=today.year, month=today.month)
    assert refused.status_code == 403, refused.text


def test_points_expiring_ahead_for_operators(ops: Ops) -> None:
    account = ops.open_account("zj-staff", "330000")
    ops.plant_trees(account)
    answer = ops.get("viewer", "/v1/expiring-ahead", months_ahead=36)
    assert answer.status_code == 200, answer.text
    ahead = answer.json()
    zhejiang = next(region for region in ahead["regions"] if region["region_code"] == "330000")
    assert len(zhejiang["months"]) == 36 and zhejiang["months"][24]["amount_points"] >= 200
    assert [m["amount_points"] for m in ahead["national"]] == [
        sum(region["months"][i]["amount_points"] for region in ahead["regions"]) for i in range(36)
    ]
    assert ops.get("zj-staff", "/v1/expiring-ahead").status_code == 403


def test_counter_staff_hand_over_the_residents_data_and_no_one_elses(ops: Ops) -> None:
    resident = ops.open_account("zj-staff", "330000")
    phone = f"139{ops.last_person:08d}"
    assert ops.plant_trees(resident).status_code in {200, 201}
    neighbour = ops.open_account("zj-staff", "330000")
    neighbours_phone = f"139{ops.last_person:08d}"
    ops.plant_trees(neighbour)
    exported = ops.get("zj-staff", f"/v1/accounts/{resident}/personal-data-export")
    assert exported.status_code == 200, exported.text
    document = exported.json()
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert document["account_number"] == resident
    assert [event["behaviour"] for event in document["events"]] == ["tree_planting"]
    assert [entry["code"] for entry in document["statement"]] == ["TRANSFER_CODE_EARN"]
    assert document["account"]["masked_name"] == "王**"
    for absent in (neighbour, neighbours_phone, phone, "王秀英"):
        assert absent not in exported.text
    # Staff of another region's counter, and a viewer, may not hand it over.
    assert ops.get("bj-staff", f"/v1/accounts/{resident}/personal-data-export").status_code == 403
    assert ops.get("viewer", f"/v1/accounts/{resident}/personal-data-export").status_code == 403
    audit = ops.get("admin", "/v1/audit-log", action="account.export").json()
    assert any(entry["target"] == resident for entry in audit["entries"]), audit
