"""Dedupe fast path and rate limits, in Redis and in-process; flushing Redis never creates a duplicate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis

from carbon.ingest.v1 import ingest_service_pb2 as pb
from ingest_svc.limits import DEDUPE_TTL_S, InProcessDedupe, RedisDedupe
from tests.ingest.ingest_harness import Harness, make_harness


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_harness(
    sqlite_url: str, redis_url: str, redis_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Harness]:
    yield from make_harness(
        sqlite_url, {"CARBON_INGEST_REDIS_PREFIX": redis_prefix}, redis_url=redis_url, data_dir=tmp_path
    )


@pytest.mark.redis
def test_redis_flushed_mid_run_creates_no_duplicate(
    redis_harness: Harness, redis_client: redis.Redis, redis_prefix: str
) -> None:
    harness = redis_harness
    harness.register()
    li = harness.open_account()
    events = [harness.event(li), harness.event(li)]
    harness.submit(events)
    assert list(redis_client.scan_iter(f"{redis_prefix}seen:*")), "accepted events are remembered in Redis"
    for key in redis_client.scan_iter(f"{redis_prefix}*"):
        redis_client.delete(key)
    again = harness.submit(events)
    assert [r.outcome for r in again] == [pb.EVENT_OUTCOME_DUPLICATE] * 2
    assert harness.ledger.balance(li) == 20


@pytest.mark.redis
def test_the_redis_fast_path_skips_identity_for_known_events(redis_harness: Harness) -> None:
    harness = redis_harness
    harness.register()
    li = harness.open_account()
    events = [harness.event(li)]
    harness.submit(events)
    calls = dict(harness.fake_identity.calls)
    assert harness.submit(events)[0].outcome == pb.EVENT_OUTCOME_DUPLICATE
    assert harness.fake_identity.calls == calls


def test_the_in_process_fast_path_skips_identity_for_known_events(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    events = [harness.event(li)]
    harness.submit(events)
    calls = dict(harness.fake_identity.calls)
    assert harness.submit(events)[0].outcome == pb.EVENT_OUTCOME_DUPLICATE
    assert harness.fake_identity.calls == calls


@pytest.mark.redis
def test_redis_and_in_process_dedupe_agree(redis_client: redis.Redis, redis_prefix: str) -> None:
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    for dedupe in (InProcessDedupe(), RedisDedupe(redis_client, redis_prefix)):
        assert dedupe.seen("p", [("a", d1), ("b", d1)]) == set()
        dedupe.remember("p", [("a", d1), ("c", d2)])
        assert dedupe.seen("p", [("a", d1), ("b", d1), ("c", d2)]) == {"a", "c"}
        assert dedupe.seen("q", [("a", d1)]) == set()


@pytest.mark.redis
def test_redis_dedupe_sets_expire_after_the_acceptance_window(redis_client: redis.Redis, redis_prefix: str) -> None:
    RedisDedupe(redis_client, redis_prefix).remember("p", [("a", date(2026, 3, 1))])
    (key,) = redis_client.scan_iter(f"{redis_prefix}seen:*")
    assert 7 * 24 * 3600 < redis_client.ttl(key) <= DEDUPE_TTL_S


def test_in_process_dedupe_forgets_the_oldest_when_full() -> None:
    dedupe = InProcessDedupe(capacity=2)
    day = date(2026, 3, 1)
    dedupe.remember("p", [("a", day), ("b", day), ("c", day)])
    assert dedupe.seen("p", [("a", day), ("b", day), ("c", day)]) == {"b", "c"}
