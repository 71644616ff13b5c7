"""The Citus path (docs/scale-plan.md, section 3): every statement identity sends on its hot paths on PostgreSQL
(opening an account, a retried opening, a second channel for the same person, consents granted and checked,
resolving a platform user, reading an account) names the distribution column of each distributed identity table it
touches, except the statements the plan lists as work to do before the move, each for its stated reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from identity_svc.domain.accounts import Ref
from identity_svc.domain.consents import ConsentAction, DataCategory, Question
from identity_svc.keys import KeyRing
from identity_svc.server import IdentityServices, build_services
from identity_svc.store.consent_cache import InProcessConsentCache
from service_kit.db import make_engine, migrate
from service_kit.settings import Settings
from tests.distribution_keys import captured_statements, distributed_tables, filters_by, touched, unkeyed
from tests.identity.identity_helpers import ZHEJIANG_ID, FakeClock, MemoryLedger, opening

pytestmark = pytest.mark.postgres

TRANSIT = int(DataCategory.TRANSIT)
# What the plan says these statements filter by today instead, and the change that makes them name their key.
PLANNED = {
    "accounts": [
        ("id_hash", "one person, one account: the probe by id_hash moves to a person_index table distributed by it"),
    ],
    "consents": [
        ("request_id", "the idempotency probe by request id: UNIQUE(request_id) becomes (account_number, request_id)"),
    ],
    "channel_bindings": [
        ("account_number", "an account's bindings, read with every account view: an account_bindings table"),
    ],
}


def _planned(table: str, statement: str) -> bool:
    return any(filters_by(statement, table, column) for column, _reason in PLANNED.get(table, []))


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    migrate("identity_svc", engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_services(
    pg_engine: Engine, keys: KeyRing, clock: FakeClock, ledger: MemoryLedger, signing_key_file: Path
) -> IdentityServices:
    extra = {"CARBON_RESIDENT_AUTH_KEY_FILE": str(signing_key_file)}
    settings = Settings(service="identity_svc", region_code="330000", extra=extra)
    return build_services(settings, pg_engine, keys=keys, cache=InProcessConsentCache(), ledger=ledger, clock=clock)


def _hot_paths(services: IdentityServices, clock: FakeClock) -> None:
    first, _ = services.accounts.open_account(opening("open-1"))
    services.accounts.open_account(opening("open-1"))  # a retry answers the first result
    services.accounts.open_account(opening("open-2", platform="wechat", user="wx-1"))  # the same person's 2nd channel
    other, _ = services.accounts.open_account(opening("open-3", id_number=ZHEJIANG_ID, user="2088002"))
    for number, request_id in ((first.account_number, "g-1"), (other.account_number, "g-2")):
        services.consents.record(
            ConsentAction.GRANT, request_id=request_id, account_number=number, category=TRANSIT,
            channel=int(opening().channel), recorded_by="alipay", effective_at=None,
        )  # fmt: skip
    later = clock.now + timedelta(minutes=1)
    services.consents.check([Question(first.account_number, TRANSIT, later), Question(other.account_number, 2, later)])
    services.accounts.resolve_many([Ref("binding", "alipay", "2088001"), Ref("account_number", first.account_number)])
    services.accounts.get_account(other.account_number)


def test_the_hot_statements_name_their_distribution_keys(
    pg_services: IdentityServices, pg_engine: Engine, clock: FakeClock
) -> None:
    tables = distributed_tables("identity")
    with captured_statements(pg_engine) as statements:
        _hot_paths(pg_services, clock)
    assert {"accounts", "consents", "channel_bindings", "openings"} <= touched(statements, tables)
    unexpected = [found for found in unkeyed(statements, tables) if not _planned(found.table, found.statement)]
    assert not unexpected, "statements that would fan out to every shard:\n" + "\n".join(
        f"{found.table} (by {found.column}): {found.statement}" for found in unexpected
    )


@pytest.mark.parametrize(
    ("statement", "fans_out"),
    [
        ("SELECT 1 FROM channel_bindings WHERE (platform, platform_user_id) IN ((%(p)s, %(u)s))", False),
        ("SELECT 1 FROM channel_bindings WHERE (platform, account_number) IN ((%(p)s, %(a)s))", True),
        ("SELECT 1 FROM consents WHERE consents.account_number = ANY(%(a)s) AND category = %(c)s", False),
    ],
)
def test_the_check_reads_row_values(statement: str, fans_out: bool) -> None:
    assert bool(unkeyed([statement], distributed_tables("identity"))) is fans_out
