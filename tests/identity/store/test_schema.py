"""identity_svc's migrations build what store/tables.py describes, and accounts from before the name hash keep
working: the migration leaves their hash empty and the service fills it from the sealed record."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select

from identity_svc import store
from identity_svc.domain.accounts import AccountState, Channel
from identity_svc.server import build_services
from service_kit.accounts import new_account_number
from service_kit.db import make_engine, upgrade
from service_kit.errors import FailedPrecondition
from service_kit.settings import Settings
from tests.identity.identity_helpers import SAMPLE_ID, FakeClock, make_keys, opening


def _not_a_version_table(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("alembic_version"))


def test_migrations_build_the_tables_the_store_describes(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_a_version_table})
        assert compare_metadata(context, store.metadata) == []


@pytest.mark.usefixtures("real_migrations")
def test_an_account_from_before_the_name_hash_is_checked_against_its_record(database_url: str) -> None:
    engine = make_engine(database_url)
    keys, clock = make_keys(), FakeClock()
    number = new_account_number("330000")
    record = json.dumps({"name": "张三", "id_number": SAMPLE_ID, "phone_number": ""}).encode()
    sealed = keys.seal(record, number.encode())
    before_the_name_hash = {
        "account_number": number,
        "region_code": "330000",
        "state": int(AccountState.OPEN),
        "id_hash": keys.id_hash(SAMPLE_ID),
        "person_key": keys.person_key(SAMPLE_ID),
        "record_key_id": sealed.key_id,
        "record_blob": sealed.blob,
        "opened_via": int(Channel.INTERNET_PLATFORM),
        "opened_at": clock.now,
    }
    with engine.begin() as conn:
        upgrade("identity_svc", conn, "identity_0001")
        conn.execute(insert(store.tables.accounts).values(**before_the_name_hash))
    with engine.begin() as conn:
        upgrade("identity_svc", conn)
    services = build_services(Settings(service="identity_svc"), engine, keys=keys, clock=clock)

    with pytest.raises(FailedPrecondition):
        services.accounts.open_account(opening("r1", name="李四"))
    view, created = services.accounts.open_account(opening("r2"))

    assert (view.account_number, created) == (number, False)
    with engine.connect() as conn:
        assert conn.execute(select(store.tables.accounts.c.name_hash_key)).scalar_one() == keys.hash_key_id
    engine.dispose()
