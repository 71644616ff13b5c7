"""Exactly once across a crash: a real `python -m ingest_svc` killed at a hook point, restarted, resubmitted;
the real identity and ledger servers answer it, and the ledger's balances and conservation are the proof."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from service_kit import identities
from service_kit.logs import ready_address
from service_kit.partner_signing import sign_request
from service_kit.wire import to_timestamp
from tests.ingest.ingest_harness import Harness, make_harness, real_clock
from tests.schema_templates import migrated_here
from tests.service_identities import TRUST

ROOT = Path(__file__).resolve().parents[2]


STOP_DEADLINE_S = 20


class Ingest:
    """One `python -m ingest_svc` process; started, it prints READY with its address."""

    def __init__(self, env: dict[str, str]) -> None:
        migrated_here("ingest_svc", env["CARBON_DATABASE_URL"])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest_svc"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            address = ready_address(line)
            if address:
                self.address = address
                break
        else:
            raise AssertionError(f"ingest_svc exited with {self.process.wait()} before READY")
        self.channel = TRUST.allowed_channel(self.address, "110000")
        self.stub = ingest_service_pb2_grpc.IngestServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
        # By design a stop takes at most the drain grace (5 s) and the owed-credits sweep's join (10 s), but a stop
        # has been seen to outlast 60 s (twice in full runs, never alone; the cause is not found yet). How ingest
        # stops is not what these tests check (what a crash leaves is, and a kill is such a crash), so a stop that
        # outlasts the designed bound plus a margin ends in a kill.
        try:
            self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Harness]:
    # An in-process ingest is started too (the harness needs one); the crashing ingest is a separate process
    # sharing nothing with it but the identity and ledger servers.
    yield from make_harness(
        f"sqlite:///{tmp_path / 'harness-ingest.db'}", data_dir=tmp_path, real_identity=True, clock=real_clock()
    )


def _env(harness: Harness, tmp_path: Path, **extra: str) -> dict[str, str]:
    """An ingest process's environment, wired to the harness's identity and ledger servers; no Redis."""
    harness.clock.now = datetime.now(UTC)  # the ingest process uses the system clock
    _ingest, identity_server, ledger_server = harness.servers
    env = {
        **os.environ,
        "CARBON_REGION": "110000",
        "CARBON_DATABASE_URL": f"sqlite:///{tmp_path / 'ingest.db'}",
        "CARBON_IDENTITY_ADDRESS": identity_server.address,
        "CARBON_LEDGER_ADDRESS": ledger_server.address,
        "CARBON_LOG_LEVEL": "WARNING",
        **TRUST.env(identities.regional("110000", "ingest")),
        **extra,
    }
    env.pop("CARBON_REDIS_URL", None)
    return env


def _trips(accounts: list[str], count: int) -> list[pb.Event]:
    now = datetime.now(UTC)
    return [
        pb.Event(
            event_id=f"trip-{i}",
            account=common_pb2.AccountRef(account_number=accounts[i % len(accounts)]),
            behaviour="transit_trip",
            quantity_milli=1000,
            occurred_at=to_timestamp(now - timedelta(minutes=10 + i)),
            region_code="110000",
        )
        for i in range(count)
    ]


def _register_metro(stub: ingest_service_pb2_grpc.IngestServiceStub) -> str:
    partner = pb.Partner(
        partner_id="metro",
        name="Metro",
        kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
        allowed_behaviours=["transit_trip"],
        allowed_regions=["110000"],
    )
    return str(stub.RegisterPartner(pb.RegisterPartnerRequest(request_id="reg", partner=partner)).secret)


def _signed(events: list[pb.Event], batch_id: str, secret: str) -> pb.SubmitEventsRequest:
    return sign_request(pb.SubmitEventsRequest(partner_id="metro", batch_id=batch_id, events=events), "k1", secret)


def _crash_during_first_batch(env: dict[str, str], crash_at: str, events: list[pb.Event]) -> str:
    """Registers the partner, submits the batch to an ingest killed at `crash_at`; returns the partner's secret."""
    first = Ingest({**env, "CARBON_TEST_CRASH_AT": crash_at})
    try:
        secret = _register_metro(first.stub)
        with pytest.raises(grpc.RpcError):
            first.stub.SubmitEvents(_signed(events, "b1", secret), timeout=20)
        assert first.process.wait(timeout=20) == 86, "killed at the hook"
    finally:
        first.stop()
    return secret


@pytest.mark.parametrize("resubmitted", [6, 2], ids=["whole", "part"])
@pytest.mark.parametrize("crash_at", ["after_commit", "after_ledger"])
def test_a_batch_interrupted_by_a_crash_and_resubmitted_credits_each_event_once(
    crash_at: str, resubmitted: int, tmp_path: Path, region: Harness
) -> None:
    """Resubmitting only part of the batch finishes all of it: events are owed per credit batch, never per event."""
    harness = region
    # The resubmission, not the startup sweep, finishes the batch here.
    env = _env(harness, tmp_path, CARBON_INGEST_RESUME_ON_START="0")
    accounts = [harness.open_account(consent=(common_pb2.DATA_CATEGORY_TRANSIT,)) for _ in range(3)]
    events = _trips(accounts, 6)
    secret = _crash_during_first_batch(env, crash_at, events)
    assert harness.ledger.issued() == (60 if crash_at == "after_ledger" else 0)

    second = Ingest(env)
    request = _signed(events[:resubmitted], "b1" if resubmitted == len(events) else "b1-part", secret)
    try:
        results = second.stub.SubmitEvents(request, timeout=20).results
        again = second.stub.SubmitEvents(request, timeout=20).results
    finally:
        second.stop()
    assert [r.outcome for r in results] == [pb.EVENT_OUTCOME_DUPLICATE] * resubmitted
    assert [r.first_outcome for r in results] == [pb.EVENT_OUTCOME_ACCEPTED] * resubmitted
    assert [r.outcome for r in again] == [pb.EVENT_OUTCOME_DUPLICATE] * resubmitted
    assert [harness.ledger.balance(a) for a in accounts] == [20, 20, 20], "each event credited exactly once"
    assert harness.ledger.issued() == 60
    assert harness.ledger.calls == (2 if crash_at == "after_ledger" else 1), "the replay re-posts, the ledger dedupes"


def test_the_startup_sweep_credits_a_batch_left_owed_by_a_crash(tmp_path: Path, region: Harness) -> None:
    harness = region
    env = _env(harness, tmp_path)
    accounts = [harness.open_account(consent=(common_pb2.DATA_CATEGORY_TRANSIT,)) for _ in range(2)]
    events = _trips(accounts, 4)
    secret = _crash_during_first_batch(env, "after_commit", events)
    assert harness.ledger.issued() == 0

    second = Ingest(env)  # nobody resubmits: the sweep at start finishes the credit batch
    try:
        deadline = time.monotonic() + 20
        while harness.ledger.issued() < 40 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the ledger: the sweep runs on its own thread
        results = second.stub.SubmitEvents(_signed(events, "b1", secret), timeout=20).results
    finally:
        second.stop()
    assert [harness.ledger.balance(a) for a in accounts] == [20, 20]
    assert harness.ledger.issued() == 40 and harness.ledger.calls == 1
    assert [r.first_outcome for r in results] == [pb.EVENT_OUTCOME_ACCEPTED] * 4
