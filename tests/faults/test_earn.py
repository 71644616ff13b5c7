"""kill -9 during earn: a real `python -m ingest_svc` dies at each crash point of a batch (tests/ingest/test_crash.py's
harness: real identity and ledger servers), restarts and sweeps; and a real `python -m ledger_svc`
(tests/gateway/federation.py) is SIGKILLed while batches arrive. Then the points ingest accepted equal the ledger's
earn credits, each account has its events' points, and the journal verifies and conserves."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from service_kit import identities
from service_kit.db import make_engine
from service_kit.wire import to_timestamp
from tests.faults.books import assert_journal_sound
from tests.gateway.federation import Federation
from tests.ingest.ingest_harness import Harness
from tests.ingest.test_crash import Ingest, _crash_during_first_batch, _env, _register_metro, _signed, _trips
from tests.ingest.test_crash import region as region  # the fixture, reused
from tests.service_identities import TRUST

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


def consenting_accounts(fed: Federation, code: str, count: int) -> list[str]:
    """Accounts opened at the region's identity server, each consenting to transit data since 40 days ago."""
    identity = identity_service_pb2_grpc.IdentityServiceStub(fed._channel(f"127.0.0.1:{fed.identity_ports[code]}"))
    since = datetime.now(UTC) - timedelta(days=40)
    accounts = [fed.open_account(code, opened_at=since) for _ in range(count)]
    for account in accounts:
        identity.GrantConsent(
            ipb.GrantConsentRequest(
                request_id=f"consent-{account}",
                account_number=account,
                category=common_pb2.DATA_CATEGORY_TRANSIT,
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                recorded_by="alipay",
                effective_at=to_timestamp(since),
            ),
            timeout=10,
        )
    return accounts


def submit_until_answered(ingest: Ingest, request: pb.SubmitEventsRequest, unavailable: list[str]) -> None:
    """The partner's retry loop: the same batch again while ingest answers UNAVAILABLE (the ledger is away)."""
    deadline = time.monotonic() + 40
    while True:
        try:
            ingest.stub.SubmitEvents(request, timeout=10)
            return
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            assert time.monotonic() < deadline, "ingest never answered the batch"
            unavailable.append(error.details() or "")
            time.sleep(0.1)


def test_the_ledger_killed_during_earn_credits_every_accepted_point_once(tmp_path: Path) -> None:
    fed = Federation(tmp_path, ["110000"])
    ingest: Ingest | None = None
    try:
        accounts = consenting_accounts(fed, "110000", 3)
        env = {
            **fed._env(),
            "CARBON_REGION": "110000",
            "CARBON_DATABASE_URL": f"sqlite:///{tmp_path / 'ingest.db'}",
            "CARBON_IDENTITY_ADDRESS": f"127.0.0.1:{fed.identity_ports['110000']}",
            "CARBON_LEDGER_ADDRESS": f"127.0.0.1:{fed.ledger_ports['110000']}",
            **TRUST.env(identities.regional("110000", "ingest")),
        }
        ingest = Ingest(env)
        secret = _register_metro(ingest.stub)
        events = _trips(accounts, 30)
        batches = [_signed(events[start : start + 5], f"b{start}", secret) for start in range(0, 30, 5)]
        unavailable: list[str] = []
        first_answered = threading.Event()

        def partner() -> None:
            for request in batches:
                submit_until_answered(ingest, request, unavailable)  # type: ignore[arg-type]
                first_answered.set()
                time.sleep(0.1)

        sending = threading.Thread(target=partner)
        sending.start()
        assert first_answered.wait(30)
        fed.kill_ledger("110000")
        time.sleep(0.6)
        fed.start_ledger("110000")
        sending.join(60)
        assert unavailable, "the kill met no batch"
        accepted = accepted_by_ingest(tmp_path)
        assert sum(accepted.values()) == 300
        ledger = fed.ledger("110000")
        assert assert_journal_sound(ledger).issued_points == 300, "ingest's accepted points = the ledger's earn credits"
        for account, points in accepted.items():
            assert fed.balance("110000", account).total_points == points
    finally:
        if ingest is not None:
            ingest.stop()
        fed.close()
