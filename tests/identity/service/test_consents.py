"""Consent per data category: grant, revoke, history newest first, and batched checks read through a cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity_svc.domain.accounts import AccountState, Channel, Ref, Resolved
from identity_svc.domain.consents import ConsentAction, DataCategory, Question
from identity_svc.server import IdentityServices
from identity_svc.service.consents import next_page_token, page_after
from identity_svc.store.consent_cache import ConsentCache, RedisConsentCache
from service_kit import paging
from service_kit.accounts import new_account_number
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.identity.identity_helpers import ZHEJIANG_ID, FakeClock, opening

TRANSIT = int(DataCategory.TRANSIT)


APP = int(Channel.INTERNET_PLATFORM)


def grant(services: IdentityServices, account: str, request_id: str, category: int = TRANSIT, **kw: object) -> None:
    services.consents.record(
        ConsentAction.GRANT, request_id=request_id, account_number=account, category=category, channel=APP,
        recorded_by="alipay", effective_at=kw.get("at"),  # type: ignore[arg-type]
    )  # fmt: skip


def revoke(services: IdentityServices, account: str, request_id: str, category: int = TRANSIT, **kw: object) -> None:
    services.consents.record(
        ConsentAction.REVOKE, request_id=request_id, account_number=account, category=category, channel=APP,
        recorded_by="resident", effective_at=kw.get("at"),  # type: ignore[arg-type]
    )  # fmt: skip


def test_revoked_consent_scores_events_before_the_revocation_only(services: IdentityServices, clock: FakeClock) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    granted_at = clock.now
    grant(services, account, "g1")
    revoked_at = clock.advance(days=30)
    revoke(services, account, "v1")
    before = granted_at + timedelta(days=29)
    after = revoked_at + timedelta(seconds=1)
    answers = services.consents.check(
        [Question(account, TRANSIT, before), Question(account, TRANSIT, after), Question(account, 2, before)]
    )
    assert [(a.allowed, a.reason) for a in answers] == [
        (True, ""),
        (False, "CONSENT_REVOKED"),
        (False, "CONSENT_MISSING"),
    ]


def test_unknown_and_malformed_accounts_answer_unknown_account(services: IdentityServices, clock: FakeClock) -> None:
    answers = services.consents.check(
        [Question(new_account_number("330000"), TRANSIT, clock.now), Question("nonsense", TRANSIT, clock.now)]
    )
    assert [a.reason for a in answers] == ["UNKNOWN_ACCOUNT", "UNKNOWN_ACCOUNT"]


def test_a_question_without_a_category_or_time_is_invalid(services: IdentityServices, clock: FakeClock) -> None:
    with pytest.raises(InvalidArgument) as no_category:
        services.consents.check([Question("x", TRANSIT, clock.now), Question("x", 0, clock.now)])
    assert no_category.value.field == "questions[1].category"
    with pytest.raises(InvalidArgument) as no_time:
        services.consents.check([Question("x", TRANSIT, None)])
    assert no_time.value.field == "questions[0].at"


def test_history_lists_newest_first_across_pages(services: IdentityServices, clock: FakeClock) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    for index in range(5):
        clock.advance(hours=1)
        grant(services, account, f"g{index}", category=index + 1)
    first, token = services.consents.history(account, 2, "")
    second, token2 = services.consents.history(account, 2, token)
    third, token3 = services.consents.history(account, 2, token2)
    categories = [int(record.category) for record in first + second + third]
    assert categories == [5, 4, 3, 2, 1]
    assert token3 == ""
    with pytest.raises(InvalidArgument) as bad_token:
        services.consents.history(account, 2, "not-a-token!")
    assert bad_token.value.reason == "INVALID_PAGE_TOKEN"


def test_recording_is_idempotent_by_request_id(services: IdentityServices) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    grant(services, account, "g1")
    grant(services, account, "g1")
    records, _ = services.consents.history(account, 10, "")
    assert len(records) == 1
    with pytest.raises(AlreadyExists) as reused:
        revoke(services, account, "g1")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_consent_for_an_unknown_account_is_not_found_and_a_future_time_invalid(
    services: IdentityServices, clock: FakeClock
) -> None:
    with pytest.raises(NotFound):
        grant(services, new_account_number("330000"), "g1")
    account = services.accounts.open_account(opening())[0].account_number
    with pytest.raises(InvalidArgument) as future:
        grant(services, account, "g2", at=clock.now + timedelta(hours=1))
    assert future.value.field == "effective_at"


def test_a_backdated_grant_applies_from_its_effective_time(services: IdentityServices, clock: FakeClock) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    clock.advance(days=3)
    grant(services, account, "g1", at=clock.now - timedelta(days=2))
    [answer] = services.consents.check([Question(account, TRANSIT, clock.now - timedelta(days=1))])
    assert answer.allowed


def test_checks_are_served_from_the_cache_and_see_every_change(
    make_services: object, cache: ConsentCache, clock: FakeClock
) -> None:
    services: IdentityServices = make_services(cache=cache)  # type: ignore[operator]
    account = services.accounts.open_account(opening())[0].account_number
    question = [Question(account, TRANSIT, clock.now + timedelta(seconds=1))]
    assert services.consents.check(question)[0].reason == "CONSENT_MISSING"
    hits, _ = cache.lookup([account])
    assert account in hits  # the first check filled the cache
    grant(services, account, "g1")
    assert cache.lookup([account])[0] == {}  # the grant invalidated it
    assert services.consents.check(question)[0].allowed
    clock.advance(minutes=1)
    revoke(services, account, "v1")
    later = [Question(account, TRANSIT, clock.now + timedelta(seconds=1))]
    assert services.consents.check(later)[0].reason == "CONSENT_REVOKED"
    assert services.consents.check(question)[0].allowed


def test_closed_accounts_refuse_new_consents(services: IdentityServices) -> None:
    account = services.accounts.open_account(opening(id_number=ZHEJIANG_ID))[0].account_number
    services.closing.close("c1", account, 3, "resident")
    with pytest.raises(FailedPrecondition) as closed:
        grant(services, account, "g1")
    assert closed.value.reason == "ACCOUNT_CLOSED"


def test_checks_read_the_database_when_redis_is_down(make_services: object, clock: FakeClock) -> None:
    from service_kit import redis_client

    # Port 1 refuses at once: every lookup, fill and invalidation fails as during an outage.
    cache = RedisConsentCache(redis_client.connect("redis://127.0.0.1:1/0"), "carbon:test:down:")
    services: IdentityServices = make_services(cache=cache)  # type: ignore[operator]
    account = services.accounts.open_account(opening())[0].account_number
    grant(services, account, "g1")
    answers = services.consents.check(
        [Question(account, TRANSIT, clock.now), Question(new_account_number("330000"), TRANSIT, clock.now)]
    )
    assert [(a.allowed, a.reason) for a in answers] == [(True, ""), (False, "UNKNOWN_ACCOUNT")]


def test_warm_checks_and_resolves_take_no_database_connection(
    make_services: object, cache: ConsentCache, clock: FakeClock
) -> None:
    from sqlalchemy import event

    services: IdentityServices = make_services(cache=cache)  # type: ignore[operator]
    account = services.accounts.open_account(opening())[0].account_number
    grant(services, account, "g1")
    unknown = new_account_number("330000")
    questions = [Question(account, TRANSIT, clock.now), Question(unknown, TRANSIT, clock.now)]
    refs = [Ref("account_number", account), Ref("account_number", unknown)]
    services.consents.check(questions)  # fills the cache
    checkouts: list[object] = []

    def checked_out(*args: object) -> None:
        checkouts.append(args)

    engine = services.consents.engine
    event.listen(engine, "checkout", checked_out)
    try:
        answers = services.consents.check(questions)
        resolved = services.accounts.resolve_many(refs)
    finally:
        event.remove(engine, "checkout", checked_out)
    assert [a.reason for a in answers] == ["", "UNKNOWN_ACCOUNT"]
    assert resolved == [Resolved(account, AccountState.OPEN), None]
    assert checkouts == []


def test_a_page_token_names_the_last_records_time_then_its_id() -> None:
    at = datetime(2026, 3, 15, 2, 0, 0, 123456, tzinfo=UTC)

    token = next_page_token(at, 42)

    assert paging.decode_token(token, "consents", int, int) == [1773540000123456, 42]
    assert page_after(token) == (at, 42)


def test_no_consent_takes_effect_before_the_account_was_opened(services: IdentityServices, clock: FakeClock) -> None:
    opened_at = clock.now
    account = services.accounts.open_account(opening())[0].account_number
    clock.advance(days=1)
    for record, request_id in ((grant, "g1"), (revoke, "v1")):
        with pytest.raises(InvalidArgument) as backdated:
            record(services, account, request_id, at=opened_at - timedelta(seconds=1))
        assert (backdated.value.field, backdated.value.reason) == ("effective_at", "INVALID_EFFECTIVE_AT")
    grant(services, account, "g2", at=opened_at)
    [before, at_opening] = services.consents.check(
        [Question(account, TRANSIT, opened_at - timedelta(hours=1)), Question(account, TRANSIT, opened_at)]
    )
    assert (before.reason, at_opening.allowed) == ("CONSENT_MISSING", True)
