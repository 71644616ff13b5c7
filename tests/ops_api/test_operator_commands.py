"""The `carbon` operator commands (service_kit/operations.py, scheduled_runs.py) against the ops tests' federation,
found through its registry file as `carbon up` writes one: expire (on a rehearsal clock, interrupted and rerun), jobs,
settle, remind, import (interrupted and rerun)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc as identity_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from ledger_svc.domain.time import add_months
from service_kit import identities, scheduled_runs
from service_kit.cli import main
from service_kit.clock import china_day, set_rehearsal_offset, start_of_china_day
from service_kit.operations import read_events
from service_kit.topology import Registry
from tests.ops_api.ops_support import PARTNER, SCHEDULED_REGION, Federation, Ops
from tests.service_identities import TRUST

REGION = "330000"


def ledger_address(federation: Federation, code: str = REGION) -> str:
    registry = Registry.load(federation.registry_path)
    return next(region.ledger_address for region in registry.regions if region.region_code == code)


@pytest.fixture(autouse=True)
def operator_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands call as the ops API, with the key the test trust bundle knows (as an operator's environment)."""
    for name, value in TRUST.env(identities.OPS_API).items():
        monkeypatch.setenv(name, value)


def test_carbon_expire_runs_the_days_sweep_on_a_rehearsal_clock_interrupted_and_rerun_and_jobs_lists_it(
    ops: Ops, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = ops.open_account(region=SCHEDULED_REGION, who="op1")
    earned = datetime.now(UTC) - timedelta(days=700)
    with TRUST.channel(ledger_address(ops.federation, SCHEDULED_REGION), identities.OPS_API) as channel:
        transfer = lpb.Transfer(
            transfer_id=f"old-{account}", debit_account="system:issuance", credit_account=account,
            amount_points=40, code=lpb.TRANSFER_CODE_EARN,
        )  # fmt: skip
        transfer.earned_at.FromDatetime(earned)
        posted = ledger_grpc.LedgerServiceStub(channel).PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]))
    assert posted.results[0].status == lpb.TRANSFER_STATUS_POSTED
    data_dir = str(ops.federation.root)
    command = ["expire", "--data-dir", data_dir, "--region", SCHEDULED_REGION]
    set_rehearsal_offset(timedelta(days=60))  # the lot earned 700 days ago has expired on the shifted clock
    try:
        with monkeypatch.context() as interrupted:
            # Ctrl-C while the command watches: the run it asked for goes on in the ledger.
            interrupted.setattr(scheduled_runs, "progress", _interrupt)
            assert main(command) == 130
        assert "carbon expire` again" in capsys.readouterr().out
        assert main(command) == 0
        first = capsys.readouterr().out.strip().splitlines()[-1]
        today = china_day(datetime.now(UTC) + timedelta(days=60)).isoformat()
        assert main(command) == 0
        again = capsys.readouterr().out.strip().splitlines()[-1]
    finally:
        set_rehearsal_offset(timedelta(0))
    assert first.startswith(f"{SCHEDULED_REGION} {today}: DONE after 1 attempt(s);"), first
    lots, points = (int(part.split()[0].replace(",", "")) for part in first.split("; ")[1].split(", "))
    assert lots >= 1 and points >= 40
    assert again == first, "asking again shows the same run; nothing is swept twice"
    balance = ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]
    assert balance["available_points"] == 0
    assert main(["expire", "--data-dir", data_dir, "--as-of", "2026-1-1"]) == 2
    assert main(["jobs", "--data-dir", data_dir]) == 0
    listed = capsys.readouterr().out
    assert "330000" in listed and "110000" in listed and "leader" in listed and today in listed
    assert main(["jobs", "--data-dir", data_dir, "--region", "999999"]) == 2


def _interrupt(*_shown: object) -> None:
    raise KeyboardInterrupt


def test_carbon_import_submits_signed_batches_and_a_rerun_skips_what_was_answered(
    ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = ops.open_account()
    now = datetime.now(UTC)  # after her consent: the events count
    records = [
        {"event_id": f"imp-{account}-{n}", "account_number": account, "behaviour": behaviour, "quantity": 1,
         "occurred_at": (now + timedelta(seconds=n)).isoformat(), "region_code": REGION}
        for n, behaviour in enumerate(["tree_planting", "tree_planting", "flying_less"])
    ]  # fmt: skip
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert [event.quantity_milli for event in read_events(source)] == [1000, 1000, 1000]
    monkeypatch.setenv("CARBON_SECRET_IMPORT_PARTNER", ops.federation.partner_secrets[REGION])
    command = ["import", str(source), "--partner-id", PARTNER, "--key-id", "k1", "--region", REGION]
    command += ["--data-dir", str(ops.federation.root), "--batch-size", "2"]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert "3 events: accepted 2, rejected 1" in first and "UNKNOWN_BEHAVIOUR: 1" in first
    assert ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"] == 400
    assert main(command) == 0, "a rerun after the whole file was answered sends nothing"
    assert "skipped the first 3 events" in capsys.readouterr().out
    assert main([*command, "--restart"]) == 0
    assert "3 events: duplicate 2, rejected 1" in capsys.readouterr().out, "resent: answered as duplicates"
    assert ops.get("viewer", f"/v1/accounts/{account}/balance").json()["balance"]["available_points"] == 400


def test_carbon_import_names_a_bad_record_and_a_missing_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "events.csv"
    source.write_text("event_id,behaviour,occurred_at,region_code,quantity\ne1,bike_km,yesterday,330000,2\n")
    monkeypatch.delenv("CARBON_SECRET_IMPORT_PARTNER", raising=False)
    command = ["import", str(source), "--partner-id", "p", "--key-id", "k1", "--ingest", "127.0.0.1:1"]
    assert main(command) == 2 and "CARBON_SECRET_IMPORT_PARTNER" in capsys.readouterr().err
    monkeypatch.setenv("CARBON_SECRET_IMPORT_PARTNER", "s")
    assert main(command) == 2 and "record 1" in capsys.readouterr().err


def test_carbon_settle_closes_a_month_once_and_a_rerun_shows_the_same_close(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    account = ops.open_account(region=SCHEDULED_REGION, who="op1")
    with TRUST.channel(ledger_address(ops.federation, SCHEDULED_REGION), identities.OPS_API) as channel:
        transfer = lpb.Transfer(
            transfer_id=f"settle-{account}", debit_account="system:issuance", credit_account=account,
            amount_points=40, code=lpb.TRANSFER_CODE_EARN,
        )  # fmt: skip
        ledger_grpc.LedgerServiceStub(channel).PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]))
    data_dir = str(ops.federation.root)
    month = "2026-01"
    assert main(["settle", "--data-dir", data_dir, "--region", SCHEDULED_REGION, "--month", month]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.startswith(f"{SCHEDULED_REGION} {month}: DONE after 1 attempt(s)"), first
    outstanding = int(first.split("; ")[1].split()[0].replace(",", ""))
    conservation = ops.get("viewer", f"/v1/regions/{SCHEDULED_REGION}/conservation").json()
    assert outstanding == conservation["outstanding_points"] >= 40, "the close records the points outstanding"
    assert main(["settle", "--data-dir", data_dir, "--region", SCHEDULED_REGION, "--month", month]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == first, "asking again shows the same close"
    with TRUST.channel(ledger_address(ops.federation, SCHEDULED_REGION), identities.OPS_API) as channel:
        request = lpb.ListJobRunsRequest(job="monthly_close", period=month)
        (run,) = ledger_grpc.LedgerServiceStub(channel).ListJobRuns(request).runs
    assert (run.state, run.attempts) == (lpb.JOB_RUN_STATE_DONE, 1)


def test_carbon_settle_refuses_a_bad_month(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(ops.federation.root)
    assert main(["settle", "--data-dir", data_dir, "--region", SCHEDULED_REGION, "--month", "2026-1"]) == 2
    current = datetime.now(UTC).strftime("%Y-%m")
    assert main(["settle", "--data-dir", data_dir, "--region", SCHEDULED_REGION, "--month", current]) == 1
    assert "period" in capsys.readouterr().err


def test_carbon_remind_queues_a_days_reminders_in_identity_once(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    account = ops.open_account(region=SCHEDULED_REGION, who="op1")
    # A run asked for yesterday (the scheduler runs only today's by itself): a lot expiring 7 days after it.
    yesterday = china_day(datetime.now(UTC)) - timedelta(days=1)
    expires_on = yesterday + timedelta(days=7)
    with TRUST.channel(ledger_address(ops.federation, SCHEDULED_REGION), identities.OPS_API) as channel:
        transfer = lpb.Transfer(
            transfer_id=f"remind-{account}", debit_account="system:issuance", credit_account=account,
            amount_points=25, code=lpb.TRANSFER_CODE_EARN,
        )  # fmt: skip
        transfer.earned_at.FromDatetime(start_of_china_day(add_months(expires_on, -24)) + timedelta(hours=12))
        ledger_grpc.LedgerServiceStub(channel).PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]))
    data_dir = str(ops.federation.root)
    command = ["remind", "--data-dir", data_dir, "--region", SCHEDULED_REGION, "--day", yesterday.isoformat()]
    assert main(command) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.startswith(f"{SCHEDULED_REGION} {yesterday.isoformat()}: DONE after 1 attempt(s);"), first
    assert main(command) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == first, "asking again shows the same run"
    registry = Registry.load(ops.federation.registry_path)
    identity = next(r.identity_address for r in registry.regions if r.region_code == SCHEDULED_REGION)
    with TRUST.channel(identity, identities.OPS_API) as channel:
        request = ipb.ListReminderDeliveriesRequest(state=ipb.REMINDER_DELIVERY_STATE_PENDING, page_size=500)
        listed = identity_grpc.IdentityServiceStub(channel).ListReminderDeliveries(request).deliveries
    ours = [(d.notice.points, d.route) for d in listed if d.notice.notice_key == f"expiring:{account}:{expires_on}:7"]
    assert ours == [(25, "sms")], "the counter account is reminded by SMS"
    assert main(["remind", "--data-dir", data_dir, "--day", "2026-1-1"]) == 2
