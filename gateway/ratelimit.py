"""Token buckets: per caller at the front door (Redis when configured, shared by every gateway replica; in-process
otherwise) and for the recovery loop's status checks. Redis is an accelerator: when it fails, the in-process bucket
decides, so an outage of Redis never closes the front door.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

log = logging.getLogger("carbon.gateway.ratelimit")


class TokenBucket:
    """At most `rate_per_s` takes per second on average, bursts up to `burst`."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
            self._stamp = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class Limiter(Protocol):
    def allow(self, caller_id: str, rate_per_s: float, burst: int) -> bool: ...


class InProcessLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, caller_id: str, rate_per_s: float, burst: int) -> bool:
        with self._lock:
            bucket = self._buckets.get(caller_id)
            if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
                bucket = self._buckets[caller_id] = TokenBucket(rate_per_s, burst)
        return bucket.take()


# One atomic take; Redis's own clock, so replicas with skewed clocks share one bucket fairly. A new bucket is full.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp_ms')
local tokens = tonumber(state[1]) or burst
local stamp_ms = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + math.max(0, now_ms - stamp_ms) * rate / 1000.0)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp_ms', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
return allowed
"""


class RedisLimiter:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._script = client.register_script(_TAKE)
        self._fallback = InProcessLimiter()

    def allow(self, caller_id: str, rate_per_s: float, burst: int) -> bool:
        try:
            return bool(self._script(keys=[f"{self._prefix}rate:{caller_id}"], args=[rate_per_s, burst]))
        except redis.RedisError as error:
            log.warning("redis rate limit unavailable; deciding in-process", extra={"error": str(error)})
            return self._fallback.allow(caller_id, rate_per_s, burst)


def build_limiter(redis_url: str, prefix: str) -> Limiter:
    if not redis_url:
        return InProcessLimiter()
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RedisLimiter(client, prefix)
