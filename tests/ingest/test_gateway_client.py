"""Ingest's gateway client: claims ahead wait in a pool of threads that close() shuts down with the channel, and a
client closed and used again claims as before."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_svc.clients import ClaimColumns, GatewayClient
from service_kit.clock import china_day, system_clock
from service_kit.server import RunningServer
from service_kit.settings import Settings
from tests.gateway.claims_gateway import claims_gateway
from tests.service_identities import TRUST

REGION = "110000"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningServer]:
    with claims_gateway(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}") as running:
        yield running


def _claims(fingerprint: bytes, event_id: str) -> ClaimColumns:
    today = china_day(system_clock()).isoformat()
    return ClaimColumns([fingerprint], ["k1"], [today], ["transit-app"], [event_id])


def _claim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gateway-claims")]


def _until_no_claim_threads() -> list[threading.Thread]:
    # shutdown(wait=False) lets an idle worker see it after its wake-up, not at once.
    deadline = time.monotonic() + 10
    while _claim_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _claim_threads()


def test_close_shuts_the_claim_threads_down_and_a_closed_client_claims_again(gateway: RunningServer) -> None:
    settings = TRUST.server(Settings(service="ingest_svc", region_code=REGION))
    client = GatewayClient(gateway.address, 10, settings)
    assert client.start_claim(_claims(b"a" * 32, "e1"))().holders == [None], "the first claim holds"
    assert _claim_threads(), "a claim ahead waits in the pool's thread"
    client.close()
    assert _until_no_claim_threads() == [], "close() leaves no idle claim threads behind"
    again = client.start_claim(_claims(b"a" * 32, "e2"))()
    assert again.holders[0] is not None and again.holders[0].event_id == "e1", "the reopened client is told the holder"
    client.close()
    assert _until_no_claim_threads() == []
