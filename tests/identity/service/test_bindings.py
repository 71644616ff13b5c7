"""Real-name binding: an existing person's account is bound only under the name on record; every binding change and
every refused binding is audited with who asked; ListBindings shows the bindings with who made them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from identity_svc import store
from identity_svc.domain.accounts import Channel, Ref
from identity_svc.domain.bindings import BindingEventKind
from identity_svc.domain.closing import PointsDisposition
from identity_svc.keys import KeyRing
from identity_svc.server import IdentityServices
from service_kit.accounts import new_account_number
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.identity.identity_helpers import SAMPLE_ID, VIA_ALIPAY, VIA_WECHAT, ZHEJIANG_ID, FakeClock, opening

ENCRYPTION_KEY = bytes(range(32))


@pytest.fixture
def keys() -> KeyRing:
    """A key ring whose encryption key a test can hand to a second ring with another HMAC key."""
    return KeyRing(b"h" * 32, b"n" * 32, {"k1": ENCRYPTION_KEY}, "k1")


def _everything_but_the_audit(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    audit = store.tables.binding_events.name
    with engine.connect() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for table in store.tables.metadata.sorted_tables
            if table.name != audit
        }


def _events(engine: Engine, account_number: str) -> list[Any]:
    with engine.connect() as conn:
        return list(store.bindings.events_of(conn, account_number))


def test_a_hijack_attempt_under_another_name_is_refused_binds_nothing_and_is_audited(
    services: IdentityServices, engine: Engine
) -> None:
    victim = services.accounts.open_account(opening("r1", phone=""), VIA_ALIPAY)[0].account_number
    before = _everything_but_the_audit(engine)
    attempt = opening("evil", name="李四", phone="13912345678", platform="wechat_pay", user="wx-attacker")

    with pytest.raises(FailedPrecondition) as refused:
        services.accounts.open_account(attempt, VIA_WECHAT)

    assert refused.value.reason == "NAME_MISMATCH"
    assert victim not in repr((refused.value.message, refused.value.metadata))
    assert _everything_but_the_audit(engine) == before  # no binding, no phone, no opening recorded
    assert services.accounts.resolve_many([Ref("binding", "wechat_pay", "wx-attacker")]) == [None]
    last = _events(engine, victim)[-1]
    assert (last.kind, last.platform, last.platform_user_id, last.request_id) == (
        BindingEventKind.REFUSED_NAME_MISMATCH,
        "wechat_pay",
        "wx-attacker",
        "evil",
    )
    assert (last.caller_service, last.caller, last.caller_platform) == (
        VIA_WECHAT.service,
        "wechat-pay-zj",
        "wechat_pay",
    )


def test_a_retried_hijack_attempt_is_refused_and_audited_again(services: IdentityServices, engine: Engine) -> None:
    victim = services.accounts.open_account(opening("r1"))[0].account_number
    attempt = opening("evil", name="李四", platform="wechat_pay", user="wx-attacker")
    for _ in range(2):
        with pytest.raises(FailedPrecondition):
            services.accounts.open_account(attempt)
    kinds = [event.kind for event in _events(engine, victim)]
    assert kinds == [
        BindingEventKind.OPENED,
        BindingEventKind.REFUSED_NAME_MISMATCH,
        BindingEventKind.REFUSED_NAME_MISMATCH,
    ]


def test_a_hijack_attempt_at_a_community_centre_is_refused_too(services: IdentityServices, engine: Engine) -> None:
    victim = services.accounts.open_account(opening("r1", phone=""))[0].account_number
    attempt = opening(
        "centre-1", name="王五", phone="13912345678", channel=Channel.COMMUNITY_CENTRE, centre="pudong-1", staff="s-7"
    )
    with pytest.raises(FailedPrecondition) as refused:
        services.accounts.open_account(attempt)
    assert refused.value.reason == "NAME_MISMATCH"
    assert services.accounts.get_account(victim).masked_phone_number == ""
    last = _events(engine, victim)[-1]
    assert (last.kind, last.community_centre_id, last.staff_id) == (
        BindingEventKind.REFUSED_NAME_MISMATCH,
        "pudong-1",
        "s-7",
    )


@pytest.mark.parametrize("given", [" 张三 ", "张三\u3000", "张三\n"])
def test_surrounding_whitespace_does_not_count(services: IdentityServices, given: str) -> None:
    first = services.accounts.open_account(opening("r1"))[0]
    second, created = services.accounts.open_account(opening("r2", name=given, platform="wechat_pay", user="wx-1"))
    assert (second.account_number, created) == (first.account_number, False)


def test_names_compare_in_unicode_nfc(services: IdentityServices) -> None:
    composed, decomposed = "Zo\u00eb Li", "Zoe\u0308 Li"
    first = services.accounts.open_account(opening("r1", name=composed))[0]
    second, _ = services.accounts.open_account(opening("r2", name=decomposed, platform="wechat_pay", user="wx-1"))
    assert second.account_number == first.account_number


@pytest.mark.parametrize("other", ["zoë li", "Zoë  Li", "Zoë-Li", "Zoë"])
def test_case_inner_spaces_and_separators_count(services: IdentityServices, other: str) -> None:
    services.accounts.open_account(opening("r1", name="Zoë Li"))
    with pytest.raises(FailedPrecondition) as refused:
        services.accounts.open_account(opening("r2", name=other, platform="wechat_pay", user="wx-1"))
    assert refused.value.reason == "NAME_MISMATCH"


def test_a_second_channel_bound_under_the_right_name_is_audited_and_listed(
    services: IdentityServices, engine: Engine, clock: FakeClock
) -> None:
    account = services.accounts.open_account(opening("r1", user="2088001234"), VIA_ALIPAY)[0].account_number
    clock.advance(hours=1)
    services.accounts.open_account(opening("r2", platform="wechat_pay", user="wx-77"), VIA_WECHAT)

    records, token = services.bindings.list_bindings(account, 0, "")

    assert token == ""
    assert [(r.platform, r.masked_platform_user_id, r.bound_by) for r in records] == [
        ("alipay", "20****34", "alipay-zj"),
        ("wechat_pay", "wx****77", "wechat-pay-zj"),
    ]
    assert records[1].bound_at == clock.now and records[1].channel is Channel.INTERNET_PLATFORM
    kinds = [(event.kind, event.platform) for event in _events(engine, account)]
    assert kinds == [(BindingEventKind.OPENED, "alipay"), (BindingEventKind.BOUND, "wechat_pay")]


def test_a_retried_opening_records_no_second_binding_event(services: IdentityServices, engine: Engine) -> None:
    account = services.accounts.open_account(opening("r1"))[0].account_number
    services.accounts.open_account(opening("r2", platform="wechat_pay", user="wx-1"))
    services.accounts.open_account(opening("r2", platform="wechat_pay", user="wx-1"))
    services.accounts.open_account(opening("r3"))  # the same platform user again: nothing changes
    assert [event.request_id for event in _events(engine, account)] == ["r1", "r2"]


def test_bindings_are_listed_a_page_at_a_time(services: IdentityServices, clock: FakeClock) -> None:
    account = services.accounts.open_account(opening("r1", user="u-1"))[0].account_number
    for index, platform in enumerate(["jd", "taobao"], start=2):
        clock.advance(minutes=1)
        services.accounts.open_account(opening(f"r{index}", platform=platform, user=f"u-{index}"))

    first, token = services.bindings.list_bindings(account, 2, "")
    rest, last_token = services.bindings.list_bindings(account, 2, token)

    assert [record.platform for record in first + rest] == ["alipay", "jd", "taobao"]
    assert token and last_token == ""


def test_listing_bindings_refuses_a_forged_page_token_and_an_unknown_account(services: IdentityServices) -> None:
    account = services.accounts.open_account(opening())[0].account_number
    with pytest.raises(InvalidArgument) as forged:
        services.bindings.list_bindings(account, 0, "not-a-token")
    assert forged.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(NotFound):
        services.bindings.list_bindings(new_account_number("330000"), 0, "")


def test_closing_records_each_unbinding_and_erases_the_platform_user_ids(
    services: IdentityServices, engine: Engine
) -> None:
    account = services.accounts.open_account(opening("r1"), VIA_ALIPAY)[0].account_number
    services.accounts.open_account(opening("r2", platform="wechat_pay", user="wx-1"), VIA_WECHAT)

    services.closing.close("c1", account, int(PointsDisposition.NONE), "resident", VIA_ALIPAY)

    events = _events(engine, account)
    assert [(event.kind, event.platform) for event in events[-2:]] == [
        (BindingEventKind.UNBOUND_AT_CLOSING, "alipay"),
        (BindingEventKind.UNBOUND_AT_CLOSING, "wechat_pay"),
    ]
    assert all(event.platform_user_id is None for event in events)
    assert services.bindings.list_bindings(account, 0, "") == ([], "")


def test_an_account_opened_before_names_were_hashed_is_checked_against_its_sealed_record(
    services: IdentityServices, engine: Engine
) -> None:
    account = services.accounts.open_account(opening("r1"))[0].account_number
    _forget_name_hashes(engine)

    with pytest.raises(FailedPrecondition):
        services.accounts.open_account(opening("r2", name="李四", platform="jd", user="jd-1"))
    services.accounts.open_account(opening("r3", platform="jd", user="jd-1"))

    with engine.connect() as conn:
        row = store.accounts.account(conn, account)
    assert row is not None and row.name_hash is not None  # filled by the opening that needed it


def test_name_hashes_are_filled_a_batch_at_a_time_and_only_once(services: IdentityServices, engine: Engine) -> None:
    services.accounts.open_account(opening("r1", id_number=SAMPLE_ID, user="u-1"))
    services.accounts.open_account(opening("r2", id_number=ZHEJIANG_ID, user="u-2"))
    _forget_name_hashes(engine)

    assert services.bindings.rehash_names(batch_size=1) == 1
    assert services.bindings.rehash_names(batch_size=10) == 1
    assert services.bindings.rehash_names() == 0


def test_a_new_hmac_key_rehashes_the_names_from_the_records(
    services: IdentityServices, keys: KeyRing, engine: Engine
) -> None:
    services.accounts.open_account(opening("r1"))
    assert services.bindings.rehash_names() == 0
    rotated = KeyRing(b"x" * 32, b"n" * 32, {"k1": ENCRYPTION_KEY}, "k1")
    with engine.connect() as conn:
        stored = conn.execute(select(store.tables.accounts.c.name_hash_key)).scalar_one()
    assert stored == keys.hash_key_id != rotated.hash_key_id

    services.accounts.keys = rotated
    assert services.bindings.rehash_names() == 1
    assert services.bindings.rehash_names() == 0


def _forget_name_hashes(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(store.tables.accounts).values(name_hash=None, name_hash_key=None))
