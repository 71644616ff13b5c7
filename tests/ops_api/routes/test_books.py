"""A region's books: statistics, conservation, journal verification and the expiry sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops_api.ops_support import Ops


def test_statistics_conservation_journal_and_expiry_sweep(ops: Ops) -> None:
    account = ops.open_account()
    ops.plant_trees(account)
    today = datetime.now(UTC).date()
    stats = ops.get("viewer", "/v1/regions/330000/statistics", from_day=str(today - timedelta(days=1)),
                    to_day=str(today + timedelta(days=1))).json()  # fmt: skip
    assert sum(r["points"] for r in stats["rows"] if r["behaviour"] == "tree_planting") >= 200
    conservation = ops.get("viewer", "/v1/regions/330000/conservation").json()
    assert conservation["balanced"] is True and conservation["sum_of_all_balances_points"] == 0
    assert ops.get("viewer", "/v1/regions/330000/journal-verification").json()["ok"] is True
    sweep = ops.post("op1", "/v1/regions/330000/expiry-sweeps", {"max_batches": 0})
    assert sweep.status_code == 200, sweep.text and sweep.json()["done"] is True
    assert ops.get("zj-staff", "/v1/regions/110000/conservation").json()["reason"] == "STAFF_REGION_MISMATCH"
