"""Redis clients for accelerators (caches, dedupe fast paths, rate limits): fail fast, never wait out an outage.

Redis is never the source of truth here, so a call that cannot reach it should fail at once and let the caller fall
back to the database or an in-process equivalent; redis-py's default retries with backoff would instead stall every
request for seconds during an outage.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SOCKET_TIMEOUT_S = 0.5


def connect(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(
        redis_url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
