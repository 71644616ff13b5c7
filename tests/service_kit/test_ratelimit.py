"""One token bucket for every service: in-process, shared through Redis, and in-process again when Redis is down."""

import socket
import threading
from collections.abc import Iterator

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


class BrokenRedis:
    """A port that accepts connections and closes them at once, counting them: a Redis that fails every call."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self.connections = 0
        self._thread = threading.Thread(target=self._refuse, daemon=True)
        self._thread.start()

    def _refuse(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # shut down
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        self._thread.join()
        self._listener.close()


@pytest.fixture
def broken_redis() -> Iterator[BrokenRedis]:
    server = BrokenRedis()
    yield server
    server.close()


def test_when_redis_fails_the_process_decides_and_does_not_ask_redis_again_at_once(broken_redis: BrokenRedis) -> None:
    limiter = RedisLimiter(connect(broken_redis.url), "x:")
    assert [limiter.allow("caller", 0.001, 2) for _ in range(3)] == [True, True, False]
    assert broken_redis.connections == 1, "one failed call per retry interval, not one per request"


def test_when_nothing_listens_the_process_decides() -> None:
    limiter = RedisLimiter(connect("redis://127.0.0.1:1/0"), "x:")  # nothing listens on port 1
    assert [limiter.allow("caller", 0.001, 2) for _ in range(3)] == [True, True, False]
