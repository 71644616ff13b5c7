"""Opening, resolving and reading accounts through the use cases, on SQLite and on real PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from identity_svc import store
from identity_svc.domain.accounts import AccountState, Binding, Channel, Ref, Resolved
from identity_svc.domain.closing import PointsDisposition
from identity_svc.domain.consents import DataCategory, Question
from identity_svc.keys import KeyRing
from identity_svc.server import IdentityServices, build_services
from identity_svc.store.consent_cache import ConsentCache, InProcessConsentCache
from service_kit.accounts import is_account_number, new_account_number, region_of
from service_kit.errors import AlreadyExists, InvalidArgument, NotFound
from service_kit.settings import Settings
from tests.identity.identity_helpers import (
    SAMPLE_ID,
    SHANGHAI_ID,
    ZHEJIANG_ID,
    FakeClock,
    opening,
    with_check_digit,
)

TRANSIT = int(DataCategory.TRANSIT)


def test_opening_creates_an_account_in_the_home_region_with_masked_data(services: IdentityServices) -> None:
    view, created = services.accounts.open_account(opening())
    assert created
    assert is_account_number(view.account_number) and region_of(view.account_number) == "330000"
    assert (view.masked_name, view.masked_id_number, view.masked_phone_number) == (
        "张*",
        "1101**********002X",
        "138****5678",
    )
    assert view.bindings == [Binding("alipay", "2088001")]
    assert view.state is AccountState.OPEN and view.opened_via is Channel.INTERNET_PLATFORM


def test_opening_a_new_persons_account_only_writes(services: IdentityServices, engine: Engine) -> None:
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if not statement.upper().startswith("BEGIN"):  # SQLite's explicit BEGIN (service_kit.db)
            statements.append(statement.upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        _, created = services.accounts.open_account(opening())
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert created
    # The account, its binding, the binding event and the opening, and no read before them: on PostgreSQL one
    # statement (ADR 0212).
    assert len(statements) == (1 if engine.dialect.name == "postgresql" else 4), statements
    written = " ".join(statements)
    assert written.count("INSERT INTO") == 4 and "SELECT" not in written, statements


def test_no_column_holds_the_raw_id_number_name_or_phone(services: IdentityServices, engine: Engine) -> None:
    services.accounts.open_account(opening())
    with engine.connect() as conn:
        rows = [tuple(row) for table in store.tables.metadata.sorted_tables for row in conn.execute(select(table))]
    flat = repr(rows)
    for secret in (SAMPLE_ID, "张三", "13812345678"):
        assert secret not in flat


def test_opening_again_through_another_channel_binds_it_to_the_same_account(services: IdentityServices) -> None:
    first, _ = services.accounts.open_account(opening("r1"))
    second, created = services.accounts.open_account(
        opening("r2", channel=Channel.GOVERNMENT_APP, platform="zheliban", user="zlb-9")
    )
    third, created_again = services.accounts.open_account(
        opening("r3", channel=Channel.COMMUNITY_CENTRE, centre="pudong-001", staff="staff-7")
    )
    assert (created, created_again) == (False, False)
    assert first.account_number == second.account_number == third.account_number
    assert set(third.bindings) == {Binding("alipay", "2088001"), Binding("zheliban", "zlb-9")}


def test_a_retried_request_returns_the_first_result(services: IdentityServices) -> None:
    first, created = services.accounts.open_account(opening("same"))
    again, created_again = services.accounts.open_account(opening("same"))
    assert again.account_number == first.account_number
    assert (created, created_again) == (True, True)


def test_a_request_id_reused_for_different_content_is_refused(services: IdentityServices) -> None:
    services.accounts.open_account(opening("same"))
    with pytest.raises(AlreadyExists) as refused:
        services.accounts.open_account(opening("same", id_number=ZHEJIANG_ID, user="other"))
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_a_platform_user_bound_to_one_person_cannot_open_for_another(services: IdentityServices) -> None:
    services.accounts.open_account(opening("r1"))
    with pytest.raises(AlreadyExists) as refused:
        services.accounts.open_account(opening("r2", id_number=ZHEJIANG_ID))
    assert refused.value.reason == "BINDING_IN_USE"
    assert services.accounts.resolve_many([Ref("id_number", ZHEJIANG_ID)]) == [None]


def test_an_account_resolves_by_binding_phone_id_number_and_number(services: IdentityServices) -> None:
    view, _ = services.accounts.open_account(opening())
    for ref in (
        Ref("binding", "alipay", "2088001"),
        Ref("phone_number", "13812345678"),
        Ref("id_number", SAMPLE_ID),
        Ref("account_number", view.account_number),
    ):
        assert services.accounts.resolve(ref).account_number == view.account_number


def test_resolving_an_unknown_reference_is_not_found_and_a_malformed_one_invalid(services: IdentityServices) -> None:
    with pytest.raises(NotFound) as missing:
        services.accounts.resolve(Ref("id_number", ZHEJIANG_ID))
    assert missing.value.reason == "UNKNOWN_ACCOUNT"
    with pytest.raises(InvalidArgument) as malformed:
        services.accounts.resolve(Ref("phone_number", "12345"))
    assert malformed.value.field == "phone_number"


def test_batch_resolution_answers_each_reference_in_order(services: IdentityServices) -> None:
    a, _ = services.accounts.open_account(opening("r1"))
    b, _ = services.accounts.open_account(
        opening("r2", id_number=ZHEJIANG_ID, name="李四", phone="13900000001", user="u2")
    )
    answers = services.accounts.resolve_many(
        [
            Ref("binding", "alipay", "u2"),
            Ref("phone_number", "13812345678"),
            Ref("binding", "alipay", "nobody"),
            Ref("account_number", a.account_number),
            Ref("account_number", "3300001234567890"),
            Ref("id_number", ZHEJIANG_ID),
        ]
    )
    assert [found.account_number if found else None for found in answers] == [
        b.account_number,
        a.account_number,
        None,
        a.account_number,
        None,
        b.account_number,
    ]


def test_a_phone_shared_by_two_residents_names_no_single_account(services: IdentityServices) -> None:
    services.accounts.open_account(opening("r1", channel=Channel.COMMUNITY_CENTRE, centre="c", staff="s"))
    services.accounts.open_account(
        opening("r2", id_number=SHANGHAI_ID, name="王五", channel=Channel.COMMUNITY_CENTRE, centre="c", staff="s")
    )
    assert services.accounts.resolve_many([Ref("phone_number", "13812345678")]) == [None]


def test_accounts_are_found_by_the_national_person_key(services: IdentityServices) -> None:
    view, _ = services.accounts.open_account(opening())
    found = services.accounts.find_by_person_key(services.accounts.keys.person_key(SAMPLE_ID))
    assert [account.account_number for account in found] == [view.account_number]
    assert services.accounts.find_by_person_key(services.accounts.keys.person_key(ZHEJIANG_ID)) == []
    with pytest.raises(InvalidArgument):
        services.accounts.find_by_person_key(SAMPLE_ID)


def test_get_account_reads_without_a_transaction_on_postgres(services: IdentityServices, engine: Engine) -> None:
    number = services.accounts.open_account(opening())[0].account_number
    in_transaction: list[bool] = []

    def record(conn: object, cursor: Any, *rest: object) -> None:
        in_transaction.append(not getattr(cursor.connection, "autocommit", False))

    event.listen(engine, "before_cursor_execute", record)
    try:
        view = services.accounts.get_account(number, with_bindings=False)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert view.account_number == number
    if engine.dialect.name == "postgresql":  # no BEGIN before the read and no ROLLBACK after it (ADR 0624)
        assert in_transaction == [False]


def test_get_account_of_an_unknown_number_is_not_found(services: IdentityServices) -> None:
    with pytest.raises(NotFound) as missing:
        services.accounts.get_account(new_account_number("330000"))
    assert missing.value.reason == "UNKNOWN_ACCOUNT"


def test_an_account_opened_without_a_phone_gets_the_first_one_given_later(services: IdentityServices) -> None:
    first, _ = services.accounts.open_account(opening("r1", phone=""))
    assert first.masked_phone_number == ""
    second, _ = services.accounts.open_account(
        opening("r2", channel=Channel.COMMUNITY_CENTRE, centre="c", staff="s", phone="13712345678")
    )
    assert second.masked_phone_number == "137****5678"
    assert services.accounts.resolve(Ref("phone_number", "13712345678")).account_number == first.account_number


def test_rotating_the_encryption_key_re_seals_records_in_batches(engine: Engine, clock: FakeClock) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    before = KeyRing(b"h" * 32, b"n" * 32, {"k1": k1}, "k1")
    after = KeyRing(b"h" * 32, b"n" * 32, {"k2": k2, "k1": k1}, "k2")
    settings = Settings(service="identity_svc")
    old = build_services(settings, engine, keys=before, cache=InProcessConsentCache(), clock=clock)
    view, _ = old.accounts.open_account(opening("r1"))
    old.accounts.open_account(opening("r2", id_number=ZHEJIANG_ID, user="u2"))
    new = build_services(settings, engine, keys=after, cache=InProcessConsentCache(), clock=clock)
    assert new.accounts.get_account(view.account_number).masked_name == "张*"  # the old key still decrypts
    assert new.accounts.reencrypt_records(batch_size=1) == 1
    assert new.accounts.reencrypt_records(batch_size=10) == 1
    assert new.accounts.reencrypt_records() == 0
    with engine.connect() as conn:
        key_ids = set(conn.execute(select(store.tables.accounts.c.record_key_id)).scalars())
    assert key_ids == {"k2"}
    assert new.accounts.get_account(view.account_number).masked_id_number == "1101**********002X"


def test_resolving_account_numbers_uses_the_cache_and_sees_opening_and_closing(
    make_services: object, cache: ConsentCache
) -> None:
    services: IdentityServices = make_services(cache=cache)  # type: ignore[operator]
    unknown = new_account_number("330000")
    assert services.accounts.resolve_many([Ref("account_number", unknown)]) == [None]
    account = services.accounts.open_account(opening())[0].account_number
    services.consents.check([Question(account, TRANSIT, datetime.now(UTC))])  # fills the cache
    services.consents.check([Question(unknown, TRANSIT, datetime.now(UTC))])  # caches "unknown" too
    assert set(cache.lookup([account, unknown])[0]) == {account, unknown}
    resolved = services.accounts.resolve_many([Ref("account_number", account), Ref("account_number", unknown)])
    assert resolved == [Resolved(account, AccountState.OPEN), None]
    services.closing.close("c1", account, int(PointsDisposition.FORFEIT), "resident")
    assert services.accounts.resolve_many([Ref("account_number", account)]) == [Resolved(account, AccountState.CLOSED)]


def test_the_view_says_whether_the_holder_is_under_14_today(services: IdentityServices, clock: FakeClock) -> None:
    adult, _ = services.accounts.open_account(opening())
    assert (adult.minor, adult.guardian_account_number) == (False, "")
    # Born 2012-03-15: the clock stands at 2026-03-15 02:00 UTC, 10:00 in China, the 14th birthday.
    turning = with_check_digit("33010620120315123")
    assert services.accounts.minor(turning) is False
    clock.advance(hours=-11)  # 2026-03-14 23:00 China time: still 13
    assert services.accounts.minor(turning) is True
    assert services.accounts.get_account(adult.account_number).minor is False
