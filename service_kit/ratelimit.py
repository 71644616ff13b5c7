"""Token buckets: per caller or partner, shared by every replica through Redis when configured, in-process otherwise.

Redis is an accelerator: when it fails, the in-process bucket decides, so a Redis outage never closes a service's
door. One place for the algorithm (the gateway's callers, ingest's partners, the ops API's tokens all use it).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from service_kit import redis_client

log = logging.getLogger("carbon.ratelimit")


class TokenBucket:
    """At most `rate_per_s` tokens per second on average, bursts up to `burst`; a new bucket is full."""

    def __init__(self, rate_per_s: float, burst: int, now_s: float | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic() if now_s is None else now_s
        self._lock = threading.Lock()

    def take(self, cost: int = 1, now_s: float | None = None) -> bool:
        """Takes `cost` tokens if there; `now_s` is the caller's clock (tests move it), monotonic time otherwise."""
        with self._lock:
            now = time.monotonic() if now_s is None else now_s
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._stamp) * self.rate_per_s)
            self._stamp = max(self._stamp, now)
            if self._tokens < cost:
                return False
            self._tokens -= cost
            return True

    def seconds_until(self, cost: int = 1) -> float:
        """How long until `cost` tokens are there (0 when they are now)."""
        with self._lock:
            return max(0.0, (cost - self._tokens) / self.rate_per_s)


class Limiter(Protocol):
    def allow(self, key: str, rate_per_s: float, burst: int, cost: int = 1, now_s: float | None = None) -> bool: ...


class InProcessLimiter:
    """One bucket per key in this process."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, rate_per_s: float, burst: int, cost: int = 1, now_s: float | None = None) -> bool:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or (bucket.rate_per_s, bucket.burst) != (rate_per_s, burst):
                bucket = self._buckets[key] = TokenBucket(rate_per_s, burst, now_s)
        return bucket.take(cost, now_s)


# One atomic take. Without a caller's clock (ARGV[4] empty) it runs on Redis's own, so replicas with skewed clocks
# share one bucket fairly. A new bucket is full.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now_ms = tonumber(ARGV[4])
if not now_ms then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp_ms')
local tokens = tonumber(state[1]) or burst
local stamp_ms = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + math.max(0, now_ms - stamp_ms) * rate / 1000.0)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp_ms', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
return allowed
"""


# After Redis fails, decide in-process for this long before trying it again: an outage then costs one timeout per
# interval, not one per request.
REDIS_RETRY_AFTER_S = 5.0


class RedisLimiter:
    """Buckets in Redis under `prefix`, shared by every replica; in-process when Redis does not answer."""

    def __init__(self, client: redis_client.Client, prefix: str) -> None:
        self._prefix = prefix
        self._script = client.register_script(_TAKE)
        self._fallback = InProcessLimiter()
        self._redis_down_until = 0.0

    def allow(self, key: str, rate_per_s: float, burst: int, cost: int = 1, now_s: float | None = None) -> bool:
        if time.monotonic() >= self._redis_down_until:
            now_ms = "" if now_s is None else str(int(now_s * 1000))
            try:
                return bool(self._script(keys=[f"{self._prefix}rate:{key}"], args=[rate_per_s, burst, cost, now_ms]))
            except redis_client.RedisError as error:
                self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S
                log.warning("redis rate limit unavailable; deciding in-process", extra={"error": str(error)})
        return self._fallback.allow(key, rate_per_s, burst, cost, now_s)


def build_limiter(redis_url: str, prefix: str) -> Limiter:
    if not redis_url:
        return InProcessLimiter()
    return RedisLimiter(redis_client.connect(redis_url), prefix)
