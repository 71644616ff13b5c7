"""Read-through cache of consent timelines for CheckConsents: Redis when configured, in-process otherwise.

Never the source of truth. A per-account generation number closes the race between a reader filling the cache with
what it read and a writer invalidating after its commit: the reader notes the generation before reading the
database, and its fill is dropped if the generation moved meanwhile. Entries also expire after a TTL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from identity_svc.domain.accounts import AccountState
from identity_svc.domain.consents import ConsentAction, ConsentEvent, ConsentTimeline, DataCategory
from service_kit import redis_client
from service_kit.redis_client import hash_tag, is_cluster
from service_kit.wire import from_unix_us, to_unix_us

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

log = logging.getLogger("carbon.identity.cache")

DEFAULT_TTL_S = 300
IN_PROCESS_MAX_ENTRIES = 100_000
DECODED_MAX_ENTRIES = 100_000
# The generation of a miss whose real generation could not be read (Redis down): never filled, since the reader
# noted nothing a later invalidation could be compared with.
UNKNOWN_GENERATION = -1


class ConsentCache(Protocol):
    def lookup(self, account_numbers: Sequence[str]) -> tuple[dict[str, ConsentTimeline], dict[str, int]]:
        """The cached timelines, and for each miss the generation to hand back to fill()."""
        ...

    def fill(self, timelines: dict[str, ConsentTimeline], generations: dict[str, int]) -> None: ...

    def invalidate(self, account_numbers: Iterable[str]) -> None:
        """Called after a commit that changed an account's consents or state."""
        ...


def encode(timeline: ConsentTimeline, generation: int) -> str:
    """A timeline as the JSON Redis holds: {"g": generation, "k": known, "s": state, "e": events}, each event a list
    [category, action, effective_at in µs since the epoch, sequence] in that order (decode reads it so)."""
    events = [
        [int(event.category), int(event.action), to_unix_us(event.effective_at), event.sequence]
        for event in timeline.events
    ]
    return json.dumps({"g": generation, "k": timeline.known, "s": int(timeline.state), "e": events})


def decode(raw: str | bytes) -> tuple[ConsentTimeline, int]:
    data: dict[str, Any] = json.loads(raw)
    events = tuple(
        ConsentEvent(
            category=DataCategory(category),
            action=ConsentAction(action),
            effective_at=from_unix_us(effective_at_us),
            sequence=sequence,
        )
        for category, action, effective_at_us, sequence in data["e"]
    )
    timeline = ConsentTimeline(known=bool(data["k"]), state=AccountState(data["s"]), events=events)
    return timeline, int(data["g"])


class InProcessConsentCache:
    """For one process (the embedded mode). Replicas of one service need Redis, or they miss each other's changes."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_entries: int = IN_PROCESS_MAX_ENTRIES) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[int, float, ConsentTimeline]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def lookup(self, account_numbers: Sequence[str]) -> tuple[dict[str, ConsentTimeline], dict[str, int]]:
        hits: dict[str, ConsentTimeline] = {}
        misses: dict[str, int] = {}
        now = time.monotonic()
        with self._lock:
            for number in account_numbers:
                generation = self._generations.get(number, 0)
                entry = self._entries.get(number)
                if entry is not None and entry[0] == generation and entry[1] > now:
                    hits[number] = entry[2]
                else:
                    misses[number] = generation
        return hits, misses

    def fill(self, timelines: dict[str, ConsentTimeline], generations: dict[str, int]) -> None:
        expires = time.monotonic() + self._ttl_s
        with self._lock:
            for number, timeline in timelines.items():
                generation = generations.get(number)
                if generation is None or self._generations.get(number, 0) != generation:
                    continue
                self._entries[number] = (generation, expires, timeline)
                self._entries.move_to_end(number)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, account_numbers: Iterable[str]) -> None:
        with self._lock:
            for number in account_numbers:
                self._generations[number] = self._generations.get(number, 0) + 1
                self._entries.pop(number, None)


# Each account's generation and entry ("" when absent) as one string, "<generation>\n<entry>\n..." in the order of
# the keys (entries: first half, generations: second half): one reply to parse instead of two per account, since
# redis-py parses replies in Python and that parse was most of the lookup's cost (ADR 0203). Both are read in one
# script run, so an entry and its generation are as consistent as with one MGET. Entries are JSON without newlines
# (json.dumps escapes them). MGET in slices: Lua's unpack has a limit near 8,000 values.
_LOOKUP = """
local n = #KEYS / 2
local out = {}
for first = 1, n, 1000 do
  local last = math.min(first + 999, n)
  local entries = redis.call('MGET', unpack(KEYS, first, last))
  local generations = redis.call('MGET', unpack(KEYS, n + first, n + last))
  for i = 1, last - first + 1 do
    out[#out + 1] = generations[i] or '0'
    out[#out + 1] = entries[i] or ''
  end
end
return table.concat(out, '\\n')
"""

_FILL_IF_GENERATION = """
local current = redis.call('GET', KEYS[2])
if (current or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 0
"""


class RedisConsentCache:
    """Keys: <prefix>consent:{<account>} (the timeline) and <prefix>consent-gen:{<account>} (its generation), both
    tagged with the account so that in a Redis Cluster they share a slot (the fill script reads one, writes the
    other; a lookup reads both together)."""

    def __init__(self, client: redis_client.Client, prefix: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._client = client
        self._cluster = is_cluster(client)
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._fill_script = client.register_script(_FILL_IF_GENERATION)
        self._lookup_script = client.register_script(_LOOKUP)
        # Entries as read from Redis -> decoded: a hit costs a dict lookup, not JSON + datetimes per consent record.
        # Keyed by the exact bytes (generation included), so it can never answer for anything Redis no longer holds.
        self._decoded: dict[bytes | str, tuple[ConsentTimeline, int]] = {}

    def _decode(self, raw: bytes | str) -> tuple[ConsentTimeline, int]:
        found = self._decoded.get(raw)
        if found is None:
            if len(self._decoded) >= DECODED_MAX_ENTRIES:
                self._decoded.clear()
            found = self._decoded[raw] = decode(raw)
        return found

    def _data_key(self, number: str) -> str:
        return f"{self._prefix}consent:{hash_tag(number)}"

    def _generation_key(self, number: str) -> str:
        return f"{self._prefix}consent-gen:{hash_tag(number)}"

    def _read(self, numbers: list[str]) -> list[bytes]:
        """Per account its generation then its entry (b"" when absent), as the lookup script answers."""
        if self._cluster:
            # Accounts spread over the cluster's slots: one MGET per slot (redis-py groups them). An account's two
            # keys share its slot, so they are read by the same MGET, as consistent as in the script.
            pairs = [key for n in numbers for key in (self._generation_key(n), self._data_key(n))]
            values = cast("RedisCluster", self._client).mget_nonatomic(pairs)
            return [value or (b"0" if index % 2 == 0 else b"") for index, value in enumerate(values)]
        # Keys as bytes: redis-py passes bytes through instead of type-checking and encoding each one.
        keys = [self._data_key(n).encode() for n in numbers] + [self._generation_key(n).encode() for n in numbers]
        reply: bytes = self._lookup_script(keys=keys, client=self._client)
        return reply.split(b"\n")

    def lookup(self, account_numbers: Sequence[str]) -> tuple[dict[str, ConsentTimeline], dict[str, int]]:
        numbers = list(dict.fromkeys(account_numbers))
        if not numbers:
            return {}, {}
        try:
            fields = self._read(numbers)
        except redis_client.RedisError as error:
            log.warning("consent cache unavailable, reading the database", extra={"error": type(error).__name__})
            return {}, dict.fromkeys(numbers, UNKNOWN_GENERATION)
        hits: dict[str, ConsentTimeline] = {}
        misses: dict[str, int] = {}
        for number, raw_generation, raw in zip(numbers, fields[0::2], fields[1::2], strict=True):
            generation = int(raw_generation)
            if raw:
                timeline, cached_generation = self._decode(raw)
                if cached_generation == generation:
                    hits[number] = timeline
                    continue
            misses[number] = generation
        return hits, misses

    def fill(self, timelines: dict[str, ConsentTimeline], generations: dict[str, int]) -> None:
        if not timelines:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for number, timeline in timelines.items():
                generation = generations.get(number, UNKNOWN_GENERATION)
                if generation == UNKNOWN_GENERATION:
                    continue
                keys = [self._data_key(number), self._generation_key(number)]
                args: list[str | int] = [str(generation), encode(timeline, generation), self._ttl_s]
                if self._cluster:
                    # A cluster pipeline neither loads a missing script by its hash nor offers eval(): the script
                    # is sent itself, routed by its keys' slot.
                    pipe.execute_command("EVAL", _FILL_IF_GENERATION, len(keys), *keys, *args)
                else:
                    self._fill_script(keys=keys, args=args, client=pipe)
            pipe.execute()
        except redis_client.RedisError as error:
            log.warning("consent cache fill failed", extra={"error": type(error).__name__})

    def invalidate(self, account_numbers: Iterable[str]) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            for number in account_numbers:
                pipe.incr(self._generation_key(number))
                pipe.expire(self._generation_key(number), 2 * self._ttl_s)
                pipe.delete(self._data_key(number))
            pipe.execute()
        except redis_client.RedisError as error:
            # The entry may now be stale until its TTL runs out; say so loudly.
            log.error("consent cache invalidation failed", extra={"error": type(error).__name__})
