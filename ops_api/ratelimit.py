"""Requests per token per minute: Redis (shared by every replica) when configured, else in-process.

Redis only accelerates here too: if it is flushed, windows restart, nothing is lost. A fixed one-minute window is
enough for staff traffic; the point is to stop a runaway script, not to shape bursts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ops_api.problems import Problem

WINDOW_S = 60


class RateLimiter:
    def __init__(
        self, per_minute: int, redis_url: str = "", prefix: str = "ops:rl:", clock: Callable[[], float] = time.time
    ) -> None:
        self.per_minute = per_minute
        self.prefix = prefix
        self._clock = clock
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def check(self, token_id: str) -> None:
        now = self._clock()
        window = int(now // WINDOW_S)
        count = self._count(token_id, window)
        if count > self.per_minute:
            retry_after = max(1, int((window + 1) * WINDOW_S - now))
            raise Problem(
                429,
                "RATE_LIMITED",
                f"more than {self.per_minute} requests per minute for this token",
                {"limit_per_minute": self.per_minute},
                headers={"Retry-After": str(retry_after)},
            )

    def _count(self, token_id: str, window: int) -> int:
        if self._redis is not None:
            key = f"{self.prefix}{token_id}:{window}"
            try:
                pipe = self._redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, WINDOW_S * 2)
                return int(pipe.execute()[0])
            except Exception:
                pass
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            self._counts[(token_id, window)] = self._counts.get((token_id, window), 0) + 1
            return self._counts[(token_id, window)]
