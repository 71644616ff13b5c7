"""The dedupe accelerator, in Redis and in-process: they agree, Redis's day sets expire after the acceptance window,
and the in-process one forgets the oldest when full."""

from __future__ import annotations

from datetime import date

import pytest
import redis

from ingest_svc.store.dedupe import DEDUPE_TTL_S, InProcessDedupe, RedisDedupe


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
