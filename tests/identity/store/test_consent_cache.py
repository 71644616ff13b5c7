"""The consent timeline cache (in-process and Redis): generations drop stale fills, one Redis lookup serves
thousands of accounts, and the stored form keeps its fields in a fixed order."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis

from identity_svc.domain.accounts import AccountState
from identity_svc.domain.consents import ConsentAction, ConsentEvent, ConsentTimeline, DataCategory
from identity_svc.server import IdentityServices
from identity_svc.store.consent_cache import ConsentCache, RedisConsentCache, decode, encode
from service_kit.accounts import luhn_check_digit
from tests.identity.identity_helpers import opening


def test_a_fill_racing_an_invalidation_is_dropped(cache: ConsentCache, services: IdentityServices) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    stale = services.consents.timelines([account])[account]
    cache.invalidate([account])
    _, generations = cache.lookup([account])
    cache.invalidate([account])  # a writer committed after this reader read the database
    cache.fill({account: stale}, generations)
    assert cache.lookup([account])[0] == {}


@pytest.mark.redis
def test_one_redis_lookup_of_thousands_of_accounts_answers_each(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = RedisConsentCache(client, redis_prefix)
    numbers = [f"330000{index:09d}" for index in range(2_500)]  # more than one slice of the lookup script
    numbers = [number + luhn_check_digit(number) for number in numbers]
    try:
        cache.invalidate(numbers[::3])
        _, generations = cache.lookup(numbers)
        assert generations == {number: 1 if index % 3 == 0 else 0 for index, number in enumerate(numbers)}
        cache.fill({number: ConsentTimeline(True) for number in numbers[::2]}, generations)
        hits, misses = cache.lookup(numbers)
        assert hits == {number: ConsentTimeline(True) for number in numbers[::2]}
        assert misses == {number: generations[number] for number in numbers[1::2]}
    finally:
        for key in client.scan_iter(f"{redis_prefix}*"):
            client.delete(key)


def test_the_stored_form_keeps_each_events_fields_in_their_order() -> None:
    at = datetime(2026, 3, 15, 2, 0, 0, 123456, tzinfo=UTC)
    event = ConsentEvent(category=DataCategory.CYCLING, action=ConsentAction.REVOKE, effective_at=at, sequence=42)
    timeline = ConsentTimeline(known=True, state=AccountState.CLOSING, events=(event,))

    stored = encode(timeline, 7)

    assert json.loads(stored) == {"g": 7, "k": True, "s": 3, "e": [[2, 2, 1_773_540_000_123_456, 42]]}
    assert decode(stored) == (timeline, 7)
