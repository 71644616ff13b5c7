"""Worked cases through the real identity server (accounts, bindings, consent history). The ledger is still the fake
of conftest: ledger_svc had no servicer committed when this was written (swap in its registrations when it has)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from conftest import Clock, FakeLedger, Harness

from carbon.common.v1 import common_pb2
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2_grpc
from identity_svc.domain import id_check_char
from identity_svc.server import registrations as identity_registrations
from ingest_svc import server as ingest_server
from ingest_svc.wire import timestamp
from service_kit.db import make_engine, migrate
from service_kit.server import Registration, start_server
from service_kit.settings import Settings

A = pb.EVENT_OUTCOME_ACCEPTED
ALIPAY_LI = common_pb2.ChannelBinding(platform="alipay", platform_user_id="li-alipay")


@pytest.fixture
def real_identity(tmp_path: Path) -> Iterator[tuple[Harness, identity_service_pb2_grpc.IdentityServiceStub]]:
    identity_settings = Settings(service="identity_svc", region_code="110000", data_dir=tmp_path)
    identity_engine = make_engine(identity_settings.effective_database_url())
    migrate("identity_svc", identity_engine)
    identity = start_server(identity_settings, identity_registrations(identity_settings, identity_engine))
    ledger = FakeLedger()  # type: ignore[abstract]
    ledger_server = start_server(
        Settings(service="ledger_svc"),
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, ledger, "ledger")],
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    migrate("ingest_svc", engine)
    clock = Clock(datetime.now(UTC))
    settings = Settings(
        service="ingest_svc",
        region_code="110000",
        extra={
            "CARBON_IDENTITY_ADDRESS": identity.address,
            "CARBON_LEDGER_ADDRESS": ledger_server.address,
            "CARBON_INGEST_RESUME_ON_START": "0",
        },
    )
    ingest = start_server(settings, ingest_server.registrations(settings, engine, clock))
    channel = grpc.insecure_channel(ingest.address)
    identity_channel = grpc.insecure_channel(identity.address)
    harness = Harness(ingest_service_pb2_grpc.IngestServiceStub(channel), None, ledger, clock)  # type: ignore[arg-type]
    try:
        yield harness, identity_service_pb2_grpc.IdentityServiceStub(identity_channel)
    finally:
        channel.close()
        identity_channel.close()
        for running in (ingest, identity, ledger_server):
            running.stop()
        engine.dispose()
        identity_engine.dispose()


def _open(identity: identity_service_pb2_grpc.IdentityServiceStub, seq: str, user: str, since: datetime) -> str:
    first17 = f"11010519800101{seq}"
    opened = identity.OpenAccount(
        ipb.OpenAccountRequest(
            request_id=f"open-{user}",
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            name="李明",
            id_number=first17 + id_check_char(first17),
            phone_number=f"1380000{seq}0",
            binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=user),
        )
    )
    number = str(opened.account.account_number)
    identity.GrantConsent(
        ipb.GrantConsentRequest(
            request_id=f"consent-{user}",
            account_number=number,
            category=common_pb2.DATA_CATEGORY_TRANSIT,
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            recorded_by="alipay",
            effective_at=timestamp(since),
        )
    )
    return number


def test_mr_li_600_points_resolved_by_his_alipay_binding(
    real_identity: tuple[Harness, identity_service_pb2_grpc.IdentityServiceStub],
) -> None:
    harness, identity = real_identity
    start = harness.clock.now
    li = _open(identity, "123", "li-alipay", start)
    harness.register()
    total = 0
    for day in range(30):
        at = start + timedelta(days=day, hours=1)
        harness.clock.now = at + timedelta(hours=2)
        trips = [harness.event(li, at=at), harness.event(li, at=at + timedelta(minutes=40))]
        for trip in trips:  # the partner knows Mr Li by his Alipay user id, not his account number
            trip.account.CopyFrom(
                common_pb2.AccountRef(
                    binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id="li-alipay")
                )
            )
        results = harness.submit(trips)
        assert [r.outcome for r in results] == [A, A], results
        total += sum(r.points for r in results)
    assert total == 600 == harness.ledger.balances[li]


def test_consent_revoked_in_identity_stops_scoring_from_then(
    real_identity: tuple[Harness, identity_service_pb2_grpc.IdentityServiceStub],
) -> None:
    harness, identity = real_identity
    start = harness.clock.now
    li = _open(identity, "456", "li2", start - timedelta(days=3))
    harness.register()
    revoked_at = start - timedelta(days=1)  # identity refuses consent changes dated in the future
    identity.RevokeConsent(
        ipb.RevokeConsentRequest(
            request_id="revoke",
            account_number=li,
            category=common_pb2.DATA_CATEGORY_TRANSIT,
            channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
            recorded_by="alipay",
            effective_at=timestamp(revoked_at),
        )
    )
    results = harness.submit(
        [harness.event(li, at=revoked_at - timedelta(hours=1)), harness.event(li, at=revoked_at + timedelta(hours=1))]
    )
    assert [(r.outcome, r.reason) for r in results] == [(A, ""), (pb.EVENT_OUTCOME_REJECTED, "CONSENT_MISSING")]
