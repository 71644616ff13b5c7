"""Redis stopped, flushed and started again under running services (issue 14, defect 3): Redis only accelerates
(ingest's dedupe fast path and rate limits, identity's consent cache, the gateway's rate limits), so with it gone
every batch is still answered OK, a committed batch is never answered with an error, duplicates are still refused by
the database, and the books are right throughout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as ipb
from carbon.ingest.v1 import ingest_service_pb2 as pb
from gateway.server import registrations as gateway_registrations
from service_kit.db import make_engine
from service_kit.server import start_server
from service_kit.settings import Settings
from service_kit.topology import plan
from service_kit.wire import to_timestamp
from tests.faults.region import OperatorKey, operator_config
from tests.faults.servers import PrivateRedis
from tests.ingest.ingest_harness import Harness, make_harness, real_clock

pytestmark = pytest.mark.faults
ACCEPTED, DUPLICATE = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE


@pytest.fixture
def harness(private_redis: PrivateRedis, sqlite_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Ingest (dedupe and rate limits in Redis) and the real identity (consent cache in Redis), both on the private
    Redis; the real ledger."""
    yield from make_harness(
        sqlite_url,
        {"CARBON_INGEST_REDIS_PREFIX": "outage:"},
        redis_url=private_redis.url(),
        data_dir=tmp_path,
        real_identity=True,
        clock=real_clock(),
    )


def submit(harness: Harness, events: list[pb.Event], batch_id: str) -> list[int]:
    return [r.outcome for r in harness.stub.SubmitEvents(harness.request(events, batch_id), timeout=30).results]


def test_ingest_goes_on_with_redis_stopped_and_flushed(harness: Harness, private_redis: PrivateRedis) -> None:
    harness.register(rate=10_000)
    account = harness.open_account()
    first = [harness.event(account) for _ in range(3)]
    assert submit(harness, first, "b1") == [ACCEPTED] * 3
    assert submit(harness, first, "b1-again") == [DUPLICATE] * 3  # the fast path: Redis remembered them
    credited = harness.ledger.balance(account)

    private_redis.stop()
    during = [harness.event(account) for _ in range(4)]
    assert submit(harness, during, "b2") == [ACCEPTED] * 4  # committed and credited: answered OK
    assert submit(harness, during, "b2-again") == [DUPLICATE] * 4  # the database is the guard
    assert submit(harness, first, "b1-third") == [DUPLICATE] * 3
    during_points = harness.ledger.balance(account) - credited
    assert during_points > 0

    private_redis.start()  # empty: as if flushed
    assert submit(harness, during + first, "b3") == [DUPLICATE] * 7
    after = [harness.event(account) for _ in range(2)]
    assert submit(harness, after, "b4") == [ACCEPTED] * 2
    private_redis.flushall()
    assert submit(harness, after, "b4-again") == [DUPLICATE] * 2
    assert harness.ledger.balance(account) > credited + during_points
    harness.ledger.assert_conserved()


def test_consents_are_granted_and_checked_with_redis_stopped(harness: Harness, private_redis: PrivateRedis) -> None:
    """The consent cache falls back to the database; a grant while Redis is down is seen at once afterwards."""
    assert harness.identity_stub is not None
    account = harness.open_account(consent=(1,))
    at = to_timestamp(harness.clock.now)
    question = ipb.ConsentQuestion(account_number=account, category=2, at=at)  # type: ignore[arg-type]
    assert not harness.identity_stub.CheckConsents(ipb.CheckConsentsRequest(questions=[question])).answers[0].allowed

    private_redis.stop()
    harness.identity_stub.GrantConsent(
        ipb.GrantConsentRequest(
            request_id=f"grant-{account}",
            account_number=account,
            category=2,  # type: ignore[arg-type]
            channel=1,  # type: ignore[arg-type]
            recorded_by="alipay",
            effective_at=to_timestamp(harness.clock.now),
        )
    )
    later = ipb.ConsentQuestion(account_number=account, category=2, at=to_timestamp(harness.clock.now))  # type: ignore[arg-type]
    assert harness.identity_stub.CheckConsents(ipb.CheckConsentsRequest(questions=[later])).answers[0].allowed
    private_redis.start()
    assert harness.identity_stub.CheckConsents(ipb.CheckConsentsRequest(questions=[later])).answers[0].allowed


def test_the_gateway_admits_callers_with_redis_stopped(private_redis: PrivateRedis, tmp_path: Path) -> None:
    """The gateway's rate limits live in Redis; stopped, the process's own buckets decide and calls go on."""
    registry = tmp_path / "registry.json"
    plan(["330000", "110000"], base_port=19450).save(registry)
    settings = Settings.from_env(
        "gateway",
        {
            "CARBON_REGISTRY_FILE": str(registry),
            "CARBON_DATA_DIR": str(tmp_path),
            "CARBON_GATEWAY_RECOVERY_INTERVAL_MS": "0",
            "CARBON_REDIS_URL": private_redis.url(),
            "CARBON_GATEWAY_CONFIG": str(operator_config(tmp_path)),
        },
    )
    assert settings.redis_url == private_redis.url()
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    running = start_server(settings, gateway_registrations(settings, engine))
    try:
        with grpc.intercept_channel(grpc.insecure_channel(running.address), OperatorKey()) as channel:
            stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            assert stub.ListRegions(gw.ListRegionsRequest(), timeout=10).regions
            assert redis.Redis.from_url(private_redis.url()).keys("carbon:gateway:rate:*")  # the bucket is in Redis
            private_redis.stop()
            for _ in range(3):
                assert stub.ListRegions(gw.ListRegionsRequest(), timeout=10).regions
            private_redis.start()
            assert stub.ListRegions(gw.ListRegionsRequest(), timeout=10).regions
    finally:
        running.stop()
        engine.dispose()
