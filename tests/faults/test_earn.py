"""kill -9 during earn: a real `python -m ingest_svc` dies at each crash point of a batch (tests/ingest/test_crash.py's
harness: real identity and ledger servers), restarts and sweeps; then the points ingest accepted equal the ledger's
earn credits, each account has its events' points, and the journal verifies and conserves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from carbon.common.v1 import common_pb2
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from service_kit.db import make_engine
from tests.faults.books import assert_journal_sound
from tests.ingest.ingest_harness import Harness
from tests.ingest.test_crash import Ingest, _crash_during_first_batch, _env, _signed, _trips
from tests.ingest.test_crash import region as region  # the fixture, reused

pytestmark = pytest.mark.faults


def accepted_by_ingest(tmp_path: Path) -> dict[str, int]:
    """Points per account of the events ingest accepted, from its own database."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT account_number, SUM(points) FROM ingest_events WHERE points > 0 GROUP BY account_number")
        ).all()
        pending = connection.execute(
            text("SELECT COUNT(*) FROM ingest_credit_batches WHERE state != 'POSTED'")
        ).scalar_one()
    engine.dispose()
    assert pending == 0, "every credit batch is posted"
    return {account: int(points) for account, points in rows}


@pytest.mark.parametrize("crash_at", ["after_commit", "after_ledger"])
def test_ingest_killed_mid_batch_credits_what_it_accepted_once(crash_at: str, tmp_path: Path, region: Harness) -> None:
    harness = region
    env = _env(harness, tmp_path)  # the restarted process's sweep finishes the batch; the resubmission replays
    accounts = [harness.open_account(consent=(common_pb2.DATA_CATEGORY_TRANSIT,)) for _ in range(3)]
    events = _trips(accounts, 6)
    secret = _crash_during_first_batch(env, crash_at, events)

    restarted = Ingest(env)
    try:
        deadline = time.monotonic() + 20
        while harness.ledger.issued() < 60 and time.monotonic() < deadline:
            time.sleep(0.05)  # the sweep at start runs on its own thread
        restarted.stub.SubmitEvents(_signed(events, "b1", secret), timeout=20)
    finally:
        restarted.stop()
    accepted = accepted_by_ingest(tmp_path)
    assert sum(accepted.values()) == 60
    conservation = assert_journal_sound(harness.ledger.stub)
    assert conservation.issued_points == sum(accepted.values()), "ingest's accepted points = the ledger's earn credits"
    for account, points in accepted.items():
        assert harness.ledger.balance(account) == points
    statement = harness.ledger.stub.ListStatementEntries(
        lpb.ListStatementEntriesRequest(account=accounts[0], page_size=50), timeout=10
    )
    assert sum(entry.amount_points for entry in statement.entries) == accepted[accounts[0]]
