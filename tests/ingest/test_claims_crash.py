"""Claims across a crash (issue 16): a real `python -m ingest_svc` claiming at a real gateway is killed after the
gateway recorded its claims (before the ledger, and after it); restarted, its startup sweep claims again, finds its
own claims and credits each event once. The ledger's balances and conservation are the proof."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.server import RunningServer
from tests.gateway.claims_gateway import claims_gateway
from tests.ingest.ingest_harness import Harness
from tests.ingest.test_activity_claims import FINGERPRINT_KEYS
from tests.ingest.test_crash import Ingest, _crash_during_first_batch, _env, _signed, _trips, region

__all__ = ["region"]  # the fixture, shared with test_crash


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningServer]:
    (tmp_path / "gateway").mkdir()
    with claims_gateway(tmp_path / "gateway", f"sqlite:///{tmp_path / 'gateway.db'}") as running:
        yield running


@pytest.mark.parametrize("crash_at", ["after_claim", "after_ledger"])
def test_a_crash_after_the_claim_credits_each_event_once_after_restart(
    crash_at: str, tmp_path: Path, region: Harness, gateway: RunningServer
) -> None:
    harness = region
    env = _env(
        harness,
        tmp_path,
        CARBON_GATEWAY_ADDRESS=gateway.address,
        CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS=FINGERPRINT_KEYS,
    )
    accounts = [harness.open_account(consent=(common_pb2.DATA_CATEGORY_TRANSIT,)) for _ in range(2)]
    events = _trips(accounts, 4)
    secret = _crash_during_first_batch(env, crash_at, events)
    assert harness.ledger.issued() == (40 if crash_at == "after_ledger" else 0)

    second = Ingest(env)  # the startup sweep claims again and finishes the credit batch
    try:
        deadline = time.monotonic() + 30
        while harness.ledger.calls < (2 if crash_at == "after_ledger" else 1) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the ledger: the sweep runs on its own thread
        results = second.stub.SubmitEvents(_signed(events, "b1", secret), timeout=20).results
    finally:
        second.stop()
    assert [harness.ledger.balance(a) for a in accounts] == [20, 20], "each event credited exactly once"
    assert harness.ledger.issued() == 40
    # The retry found its own claims: the events earned, none is a duplicate of itself.
    answers = [(r.first_outcome, r.points, r.reason) for r in results]
    assert answers == [(pb.EVENT_OUTCOME_ACCEPTED, 10, "DUPLICATE_EVENT")] * 4
    # The claims made ahead of recording (from the submitted events) and those made again after the restart (from
    # the stored rows) hash alike: one claim per activity, under the attempt that recorded it (ADR 0415).
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        claims = db.execute("SELECT count(*), count(DISTINCT attempt_id) FROM gateway_activity_claims").fetchone()
    assert claims == (4, 1)
