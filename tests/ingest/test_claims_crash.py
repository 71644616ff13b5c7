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
from carbon.ingest.v1 import ingest_service_pb2_grpc
from service_kit.partner_signing import sign_request
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


def _register(stub: ingest_service_pb2_grpc.IngestServiceStub, partner_id: str) -> str:
    partner = pb.Partner(
        partner_id=partner_id,
        name=partner_id,
        kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
        allowed_behaviours=["transit_trip"],
        allowed_regions=["110000"],
    )
    request = pb.RegisterPartnerRequest(request_id=f"reg-{partner_id}", partner=partner)
    return str(stub.RegisterPartner(request).secret)


def _card_trip(trip: pb.Event, event_id: str) -> pb.Event:
    """The same tap of the same card, as another partner reports it."""
    other = pb.Event()
    other.CopyFrom(trip)
    other.event_id = event_id
    return other


def test_a_claim_ahead_left_by_a_crash_before_the_commit_is_swept_and_another_partners_report_earns_once(
    tmp_path: Path, region: Harness, gateway: RunningServer
) -> None:
    """ADR 0416: killed once the gateway holds its claims ahead and before its record transaction commits, and metro
    never retries. Another partner's report is refused naming metro's event until the sweep of a restarted ingest
    releases the claims; then that partner's report earns, once."""
    harness = region
    env = _env(
        harness,
        tmp_path,
        CARBON_GATEWAY_ADDRESS=gateway.address,
        CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS=FINGERPRINT_KEYS,
        CARBON_INGEST_ORPHAN_CLAIM_AGE_MS="1000",
        CARBON_INGEST_ORPHAN_SWEEP_MS="0",
    )
    account = harness.open_account(consent=(common_pb2.DATA_CATEGORY_TRANSIT,))
    trip = _trips([account], 1)[0]
    trip.evidence_ref = "bjcard:tap-1"
    _crash_during_first_batch(env, "after_claim_ahead", [trip])
    assert harness.ledger.issued() == 0

    no_sweep = Ingest(env)
    try:
        secret = _register(no_sweep.stub, "bus-pay")
        refused = no_sweep.stub.SubmitEvents(_paid([_card_trip(trip, "pay-1")], "p1", secret), timeout=20).results
    finally:
        no_sweep.stop()
    assert (refused[0].points, refused[0].reason) == (0, "DUPLICATE_ACTIVITY") and "trip-0" in refused[0].message

    sweeping = Ingest({**env, "CARBON_INGEST_ORPHAN_SWEEP_MS": "200"})
    try:
        deadline = time.monotonic() + 30
        while _claims_of(tmp_path, "metro") and time.monotonic() < deadline:
            time.sleep(0.1)  # the sweep runs on its own thread
        earned = sweeping.stub.SubmitEvents(_paid([_card_trip(trip, "pay-2")], "p2", secret), timeout=20).results
    finally:
        sweeping.stop()
    assert _claims_of(tmp_path, "metro") == 0, "the crashed attempt's claim was released"
    assert (earned[0].points, earned[0].reason) == (10, "")
    assert harness.ledger.balance(account) == 10, "the activity earned once"


def _paid(events: list[pb.Event], batch_id: str, secret: str) -> pb.SubmitEventsRequest:
    return sign_request(pb.SubmitEventsRequest(partner_id="bus-pay", batch_id=batch_id, events=events), "k1", secret)


def _claims_of(tmp_path: Path, partner_id: str) -> int:
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        row = db.execute("SELECT count(*) FROM gateway_activity_claims WHERE partner_id = ?", (partner_id,)).fetchone()
    return int(row[0])
