"""One token bucket for every service: in-process, shared through Redis, and in-process again when Redis is down."""

import time

import pytest

from service_kit.ratelimit import InProcessLimiter, RedisLimiter, TokenBucket, build_limiter
from service_kit.redis_client import connect


def test_a_bucket_allows_its_burst_then_refuses() -> None:
    bucket = TokenBucket(rate_per_s=0.001, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.seconds_until() > 0


def test_a_batch_costs_as_many_tokens_as_it_has_items() -> None:
    limiter = InProcessLimiter()
    assert limiter.allow("partner-a", rate_per_s=0.001, burst=500, cost=400)
    assert not limiter.allow("partner-a", rate_per_s=0.001, burst=500, cost=200)
    assert limiter.allow("partner-b", rate_per_s=0.001, burst=500, cost=200), "buckets are per key"


@pytest.mark.parametrize("where", ["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def test_buckets_refill_at_the_rate_up_to_the_burst_on_the_callers_clock(
    where: str, request: pytest.FixtureRequest
) -> None:
    if where == "redis":
        limiter = build_limiter(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
    else:
        limiter = build_limiter("", "")
    assert limiter.allow("p", 10, 100, cost=100, now_s=0)  # a new bucket is full: 100 tokens
    assert not limiter.allow("p", 10, 100, cost=1, now_s=0)
    assert not limiter.allow("p", 10, 100, cost=10, now_s=0.5)  # 5 tokens back after half a second
    assert limiter.allow("p", 10, 100, cost=10, now_s=1.0)  # 10 after a second
    assert limiter.allow("other", 10, 100, cost=100, now_s=1.0)
    assert not limiter.allow("p", 10, 100, cost=101, now_s=10**6), "never more than the burst"


def test_without_redis_the_limiter_is_in_process() -> None:
    assert isinstance(build_limiter("", "x:"), InProcessLimiter)


@pytest.mark.redis
def test_replicas_share_one_bucket_through_redis(redis_url: str, redis_prefix: str) -> None:
    first = build_limiter(redis_url, redis_prefix)
    second = build_limiter(redis_url, redis_prefix)
    assert first.allow("caller", 0.001, 2) and second.allow("caller", 0.001, 2)
    assert not first.allow("caller", 0.001, 2) and not second.allow("caller", 0.001, 2)


def test_when_redis_is_down_the_process_decides_without_waiting() -> None:
    limiter = RedisLimiter(connect("redis://127.0.0.1:1/0"), "x:")  # nothing listens on port 1
    started = time.monotonic()
    assert [limiter.allow("caller", 0.001, 2) for _ in range(3)] == [True, True, False]
    assert time.monotonic() - started < 1.0, "an outage must not stall every request"
