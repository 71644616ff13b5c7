"""A ledger that misbehaves (down, slow past the deadline) is outside these tests: a scripted FakeLedger stands in.
Events stay PENDING, the batch answers UNAVAILABLE, and the resubmission credits each event exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from service_kit.server import Registration, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.ingest.ingest_harness import FakeLedger, Harness, make_harness
from tests.service_identities import TRUST


@pytest.fixture
def outside() -> Iterator[tuple[FakeLedger, str]]:
    ledger = FakeLedger()  # type: ignore[abstract]
    server = start_server(
        TRUST.server(Settings(service="ledger_svc", region_code="110000")),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, ledger, "ledger")],
    )
    yield ledger, server.address
    server.stop()


@pytest.fixture
def harness_on_fake_ledger(
    sqlite_url: str, tmp_path: Path, outside: tuple[FakeLedger, str]
) -> Iterator[tuple[Harness, FakeLedger]]:
    ledger, address = outside
    extra = {"CARBON_LEDGER_ADDRESS": address, "CARBON_INGEST_RPC_DEADLINE_MS": "300"}
    for harness in make_harness(sqlite_url, extra, data_dir=tmp_path):
        yield harness, ledger


def _two_trips(harness: Harness) -> tuple[str, list[pb.Event]]:
    """A registered partner's two trips of one new account."""
    harness.register()
    li = harness.open_account()
    return li, [harness.event(li), harness.event(li)]


def test_a_ledger_that_is_down_fails_the_batch_and_the_resubmission_credits_once(
    harness_on_fake_ledger: tuple[Harness, FakeLedger],
) -> None:
    harness, ledger = harness_on_fake_ledger
    li, events = _two_trips(harness)
    ledger.down = True
    with pytest.raises(grpc.RpcError) as raised:
        harness.submit(events)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(raised.value).reason == "LEDGER_UNAVAILABLE"  # type: ignore[arg-type]
    ledger.down = False
    again = harness.submit(events)
    assert [(r.outcome, r.first_outcome) for r in again] == [
        (pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_ACCEPTED)
    ] * 2
    assert ledger.balances[li] == 20 and len(ledger.transfers) == 2


def test_a_ledger_slower_than_the_deadline_that_posts_late_is_not_credited_twice(
    harness_on_fake_ledger: tuple[Harness, FakeLedger],
) -> None:
    harness, ledger = harness_on_fake_ledger
    li, events = _two_trips(harness)
    ledger.gate = threading.Event()  # holds the first PostTransfers past ingest's 300 ms deadline
    with pytest.raises(grpc.RpcError) as raised:
        harness.submit(events)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ledger.entered.is_set() and not ledger.finished.is_set()
    gate, ledger.gate = ledger.gate, None
    gate.set()  # the late call now posts both transfers
    assert ledger.finished.wait(timeout=10)
    again = harness.submit(events)  # re-posts the PENDING events with the same transfer ids
    assert [r.first_outcome for r in again] == [pb.EVENT_OUTCOME_ACCEPTED] * 2
    assert ledger.balances[li] == 20, "the late post and the re-post credit once"
