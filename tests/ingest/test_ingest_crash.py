"""Exactly once across a crash: a real `python -m ingest_svc` killed at a hook point, restarted, resubmitted;
the real identity and ledger servers answer it, and the ledger's balances and conservation are the proof."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from ingest_svc.wire import sign_request
from service_kit.wire import to_timestamp
from tests.ingest.ingest_harness import Harness, make_harness, real_clock

ROOT = Path(__file__).resolve().parents[2]


class Ingest:
    """One `python -m ingest_svc` process; started, it prints READY with its address."""

    def __init__(self, env: dict[str, str]) -> None:
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
            if line.startswith("READY "):
                self.address = line.split()[-1]
                break
        else:
            raise AssertionError(f"ingest_svc exited with {self.process.wait()} before READY")
        self.channel = grpc.insecure_channel(self.address)
        self.stub = ingest_service_pb2_grpc.IngestServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Harness]:
    # An in-process ingest is started too (the harness needs one); the crashing ingest is a separate process
    # sharing nothing with it but the identity and ledger servers.
    yield from make_harness(
        f"sqlite:///{tmp_path / 'harness-ingest.db'}", data_dir=tmp_path, real_identity=True, clock=real_clock()
    )


@pytest.mark.parametrize("crash_at", ["after_commit", "after_ledger"])
def test_a_batch_interrupted_by_a_crash_and_resubmitted_credits_each_event_once(
    crash_at: str, tmp_path: Path, region: Harness
) -> None:
    harness = region
    harness.clock.now = datetime.now(UTC)  # the ingest process uses the system clock
    _ingest, identity_server, ledger_server = harness.servers
    env = {
        **os.environ,
        "CARBON_REGION": "110000",
        "CARBON_DATABASE_URL": f"sqlite:///{tmp_path / 'ingest.db'}",
        "CARBON_IDENTITY_ADDRESS": identity_server.address,
        "CARBON_LEDGER_ADDRESS": ledger_server.address,
        "CARBON_LOG_LEVEL": "WARNING",
        "CARBON_INGEST_RESUME_ON_START": "0",  # the resubmission, not the startup sweep, finishes the batch here
    }
    env.pop("CARBON_REDIS_URL", None)
    accounts = [harness.open_account(consent=(common_pb2.DATA_CATEGORY_TRANSIT,)) for _ in range(3)]
    now = datetime.now(UTC)
    events = [
        pb.Event(
            event_id=f"trip-{i}",
            account=common_pb2.AccountRef(account_number=accounts[i % 3]),
            behaviour="transit_trip",
            quantity_milli=1000,
            occurred_at=to_timestamp(now - timedelta(minutes=10 + i)),
            region_code="110000",
        )
        for i in range(6)
    ]

    first = Ingest({**env, "CARBON_TEST_CRASH_AT": crash_at})
    try:
        registered = first.stub.RegisterPartner(
            pb.RegisterPartnerRequest(
                request_id="reg",
                partner=pb.Partner(
                    partner_id="metro",
                    name="Metro",
                    kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
                    allowed_behaviours=["transit_trip"],
                    allowed_regions=["110000"],
                ),
            )
        )
        request = sign_request(
            pb.SubmitEventsRequest(partner_id="metro", batch_id="b1", events=events), "k1", registered.secret
        )
        with pytest.raises(grpc.RpcError):
            first.stub.SubmitEvents(request, timeout=20)
        assert first.process.wait(timeout=20) == 86, "killed at the hook"
    finally:
        first.stop()
    assert harness.ledger.issued() == (60 if crash_at == "after_ledger" else 0)

    second = Ingest(env)
    try:
        results = second.stub.SubmitEvents(request, timeout=20).results
        again = second.stub.SubmitEvents(request, timeout=20).results
    finally:
        second.stop()
    assert [r.outcome for r in results] == [pb.EVENT_OUTCOME_DUPLICATE] * 6
    assert [r.first_outcome for r in results] == [pb.EVENT_OUTCOME_ACCEPTED] * 6
    assert [r.outcome for r in again] == [pb.EVENT_OUTCOME_DUPLICATE] * 6
    assert [harness.ledger.balance(a) for a in accounts] == [20, 20, 20], "each event credited exactly once"
    assert harness.ledger.issued() == 60
    assert harness.ledger.calls == (2 if crash_at == "after_ledger" else 1), "the replay re-posts, the ledger dedupes"
