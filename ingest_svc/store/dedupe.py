"""The duplicate fast path: the events recently accepted, remembered in Redis when configured, else in-process.

Never the source of truth. A flushed or missing entry only costs a slower path: the events table's unique key
(partner_id, event_id) still refuses the duplicate. So Redis down is a miss, never a failed batch: a batch whose
events were committed and credited must not be answered with an error because Redis could not remember them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date
from typing import Protocol

from service_kit import redis_client

# A day's set lives as long as an event of that day can still be accepted (7-day window) plus a day of margin, counted
# from the last event remembered in it.
DEDUPE_TTL_S = 8 * 24 * 3600
IN_PROCESS_DEDUPE_ENTRIES = 1_000_000
# After Redis fails, skip it for this long: an outage then costs one timeout per interval, not one per batch.
REDIS_RETRY_AFTER_S = 5.0
log = logging.getLogger("carbon.ingest.dedupe")


# (event id, the CST day it happened): a resubmission of an event repeats both, so the day buckets the fast path.
SeenKey = tuple[str, date]


class Dedupe(Protocol):
    def seen(self, partner_id: str, events: Sequence[SeenKey]) -> set[str]:
        """The event ids of `events` remembered before (a miss is allowed: the database decides)."""
        ...

    def remember(self, partner_id: str, events: Sequence[SeenKey]) -> None: ...


class InProcessDedupe:
    """A bounded LRU of recently accepted (partner, event id) pairs; forgets the oldest when full."""

    def __init__(self, capacity: int = IN_PROCESS_DEDUPE_ENTRIES) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, partner_id: str, events: Sequence[SeenKey]) -> set[str]:
        with self._lock:
            return {event_id for event_id, _ in events if (partner_id, event_id) in self._seen}

    def remember(self, partner_id: str, events: Sequence[SeenKey]) -> None:
        with self._lock:
            for event_id, _ in events:
                self._seen[(partner_id, event_id)] = None
                self._seen.move_to_end((partner_id, event_id))
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)


class RedisDedupe:
    """One set per partner and CST day of the events (<prefix>seen:{<partner>}:<day>), with a TTL beyond the acceptance
    window; per batch one command per distinct day (SADD to remember, SMISMEMBER to look up; Redis 6.2 or later),
    not one key per event, and no Lua script (redis-py would send SCRIPT EXISTS first, a round trip per batch)."""

    def __init__(self, client: redis_client.Client, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._down_until = 0.0

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: redis_client.RedisError, doing: str) -> None:
        self._down_until = time.monotonic() + REDIS_RETRY_AFTER_S
        log.warning("redis dedupe unavailable; the database decides", extra={"doing": doing, "error": str(error)})

    def _key(self, partner_id: str, day: date) -> str:
        # Tagged with the partner: in a Redis Cluster a batch's sets (one per day) share a slot, so a batch is one
        # round trip to one node; partners spread over the nodes.
        return f"{self._prefix}seen:{redis_client.hash_tag(partner_id)}:{day.isoformat()}"

    def _by_key(self, partner_id: str, events: Sequence[SeenKey]) -> dict[str, list[str]]:
        by_day: dict[date, list[str]] = {}
        for event_id, day in events:
            by_day.setdefault(day, []).append(event_id)
        return {self._key(partner_id, day): ids for day, ids in by_day.items()}

    def seen(self, partner_id: str, events: Sequence[SeenKey]) -> set[str]:
        """Redis down or slow: nothing seen (the record phase finds the duplicates)."""
        if not events or not self._usable():
            return set()
        pipe = self._redis.pipeline(transaction=False)
        by_key = self._by_key(partner_id, events)
        for key, ids in by_key.items():
            pipe.smismember(key, ids)
        try:
            answers = pipe.execute()
        except redis_client.RedisError as error:
            self._failed(error, "seen")
            return set()
        return {
            event_id
            for ids, flags in zip(by_key.values(), answers, strict=True)
            for event_id, flag in zip(ids, flags, strict=True)
            if flag
        }

    def remember(self, partner_id: str, events: Sequence[SeenKey]) -> None:
        """Redis down or slow: not remembered (a resubmission takes the slower path)."""
        if not events or not self._usable():
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, ids in self._by_key(partner_id, events).items():
            pipe.sadd(key, *ids)
            pipe.expire(key, DEDUPE_TTL_S)
        try:
            pipe.execute()
        except redis_client.RedisError as error:
            self._failed(error, "remember")


def build_dedupe(redis_url: str, prefix: str) -> Dedupe:
    """The Redis dedupe when a URL is configured, the in-process one otherwise."""
    if not redis_url:
        return InProcessDedupe()
    return RedisDedupe(redis_client.connect(redis_url), prefix)
