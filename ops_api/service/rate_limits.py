"""Requests per token per minute, as a token bucket from the kit (Redis, shared by every replica, when configured).

Redis only accelerates here too: if it is flushed, buckets start full again; nothing is lost.
"""

from __future__ import annotations

import math

from ops_api.problems import Problem
from service_kit.ratelimit import build_limiter


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str = "", prefix: str = "carbon:ops:") -> None:
        self.per_minute = per_minute
        self._limiter = build_limiter(redis_url, prefix)

    def check(self, token_id: str) -> None:
        """Refuses with 429 and Retry-After (seconds until a request is allowed again) above the limit."""
        if self._limiter.allow(token_id, self.per_minute / 60, self.per_minute):
            return
        raise Problem(
            429,
            "RATE_LIMITED",
            f"more than {self.per_minute} requests per minute for this token",
            {"limit_per_minute": self.per_minute},
            headers={"Retry-After": str(max(1, math.ceil(60 / self.per_minute)))},
        )
