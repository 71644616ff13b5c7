"""Requests per token per minute: 429 with Retry-After above the limit, buckets kept in Redis when configured."""

from __future__ import annotations

import redis

from tests.ops_api.ops_support import Federation, make_ops


def test_requests_above_the_per_token_limit_get_429_with_retry_after(federation: Federation) -> None:
    limited = make_ops(federation, rate_limit_per_minute=3)
    try:
        statuses = [limited.get("viewer", "/v1/me").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = limited.get("viewer", "/v1/me")
        assert refused.json()["reason"] == "RATE_LIMITED" and int(refused.headers["retry-after"]) >= 1
        assert limited.get("admin", "/v1/me").status_code == 200  # per token, not global
    finally:
        limited.client.close()
        limited.engine.dispose()


def test_rate_limits_are_kept_in_redis(federation: Federation, redis_url: str, redis_prefix: str) -> None:
    first = make_ops(federation, rate_limit_per_minute=2, redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        assert [first.get("viewer", "/v1/me").status_code for _ in range(3)] == [200, 200, 429]
        assert redis.Redis.from_url(redis_url).keys(f"{redis_prefix}rate:*"), "the buckets live in Redis"
    finally:
        first.client.close()
        first.engine.dispose()
