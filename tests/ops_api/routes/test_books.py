"""A region's books: statistics, conservation, journal verification and the expiry sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops_api.ops_support import Ops, wait_for


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
    sweep = ops.post("op1", "/v1/regions/110000/expiry-sweeps", {})
    assert sweep.status_code == 202, sweep.text
    run = sweep.json()
    assert run["job"] == "expiry" and run["state"] in ("JOB_RUN_STATE_QUEUED", "JOB_RUN_STATE_DONE"), run
    progress = f"/v1/regions/110000/job-runs/expiry/{run['period']}"
    done = wait_for(lambda: ops.get("viewer", progress).json()["state"] == "JOB_RUN_STATE_DONE", what="sweep done")
    assert done
    again = ops.post("op1", "/v1/regions/110000/expiry-sweeps", {})
    assert (again.json()["state"], again.json()["attempts"]) == ("JOB_RUN_STATE_DONE", 1), "a done run is not rerun"
    assert ops.get("zj-staff", "/v1/regions/110000/conservation").json()["reason"] == "STAFF_REGION_MISMATCH"


def test_job_runs_are_listed_found_by_period_and_refused_for_a_later_day(ops: Ops) -> None:
    tomorrow = datetime.now(UTC).date() + timedelta(days=2)
    refused = ops.post("op1", "/v1/regions/110000/expiry-sweeps", {"as_of": str(tomorrow)})
    assert refused.status_code == 400, refused.text
    assert (refused.json()["reason"], refused.json()["metadata"]["field"]) == ("INVALID_ARGUMENT", "period")
    missing = ops.get("viewer", "/v1/regions/110000/job-runs/expiry/2001-01-01")
    assert (missing.status_code, missing.json()["reason"]) == (404, "JOB_RUN_NOT_FOUND")
    asked = ops.post("op1", "/v1/regions/110000/expiry-sweeps", {"as_of": "2026-01-02"})
    assert asked.status_code == 202, asked.text
    wait_for(
        lambda: (
            ops.get("viewer", "/v1/regions/110000/job-runs/expiry/2026-01-02").json()["state"] == "JOB_RUN_STATE_DONE"
        ),
        what="the asked-for run done",
    )
    listed = ops.get("viewer", "/v1/regions/110000/job-runs", job="expiry").json()
    assert "2026-01-02" in [run["period"] for run in listed["runs"]] and listed["lease_holder"]
