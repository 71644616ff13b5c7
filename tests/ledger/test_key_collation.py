"""Account numbers and transfer ids compare byte by byte on PostgreSQL (ADR 0107): the migrations give the columns
the collation store/tables.py declares, data survives the upgrade, and the id and account statements still probe
their indexes under custom and generic plans."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, text

from ledger_svc.store import pg_credits as credit_store
from ledger_svc.store.tables import metadata
from service_kit.db import alembic_config, make_engine, migrate
from tests.collations import column_collations, declared_postgresql_collations
from tests.ledger.ledger_support import account_number, migrated_engine
from tests.plans import prepared_plan

BYTE_ORDERED = {
    ("accounts", "account"),
    ("lots", "account"),
    ("recent_lots", "account"),
    ("transfers", "transfer_id"),
    ("transfers", "debit_account"),
    ("transfers", "credit_account"),
}


def test_the_tables_declare_byte_order_for_the_opaque_keys_on_postgresql_only() -> None:
    declared = declared_postgresql_collations(metadata)
    assert {key for key, collation in declared.items() if collation == "C"} == BYTE_ORDERED
    assert all(metadata.tables[table].c[column].type.collation is None for table, column in BYTE_ORDERED)  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_migrated_columns_have_the_declared_collations(postgres_url: str) -> None:
    engine = migrated_engine(postgres_url)
    with engine.connect() as conn:
        assert column_collations(conn) == declared_postgresql_collations(metadata)
    engine.dispose()


def test_upgrading_keeps_accounts_lots_and_transfers(database_url: str) -> None:
    engine = make_engine(database_url)
    _upgrade(engine, "ledger_0003")
    name = account_number(1)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO accounts (account, balance_points, held_points, created_at_us) VALUES (:a, 7, 0, 0)"),
            {"a": name},
        )
        conn.execute(
            text(
                "INSERT INTO transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code,"
                " reference, co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint)"
                " VALUES ('earn-1', 1, 'system:issuance', :a, 7, 1, '', 0, '{}', 0, 0, 'f')"
            ),
            {"a": name},
        )
    migrate("ledger_svc", engine)
    with engine.begin() as conn:
        balances = conn.execute(text("SELECT account, balance_points FROM accounts")).all()
        credited = conn.execute(text("SELECT credit_account FROM transfers WHERE transfer_id = 'earn-1'")).all()
        if engine.dialect.name == "postgresql":
            assert credit_store.credit_users(conn, {name: 3}, 0)[0] == {name: 10}
            assert credit_store.taken_ids(conn, ["earn-1", "earn-2"]) == ({"earn-1"}, set())
            assert column_collations(conn)[("transfers", "transfer_id")] == "C"
    assert [tuple(row) for row in balances] == [(name, 7)]
    assert [tuple(row) for row in credited] == [(name,)]
    if engine.dialect.name == "postgresql":
        _downgrade(engine, "ledger_0003")
        with engine.connect() as conn:
            assert all(collation is None for collation in column_collations(conn).values())
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
def test_id_and_account_statements_probe_their_indexes(postgres_url: str, plan_cache_mode: str) -> None:
    engine = migrated_engine(postgres_url)
    ids, first = "{earn-1,earn-2}", "earn-1"
    accounts, expires, days, points = account_number(1), "1", "2026-11-01", "5"
    statements = {
        # A text parameter compared to a "C" column takes the column's collation: the key indexes still apply.
        "taken": (credit_store._TAKEN_IDS, "(text)", f"('{ids}')"),
        "held": (credit_store._HELD_OR_REPLAYED, "(text, text)", f"('{ids}', '{first}')"),
        "lots": (
            credit_store._UPSERT_LOTS,
            "(text, text, text, text)",
            f"('{accounts}', '{days}', '{expires}', '{points}')",
        ),
        "users": (credit_store._CREDIT_USERS, "(bigint, text, text)", f"(0, '{accounts}', '{points}')"),
        "statement": (
            # With ix_transfers_credit's predicate, as the statement reads say it (ADR 0130).
            text(
                "SELECT seq FROM transfers WHERE credit_account = :a AND credit_account <> 'system:expiry'"
                " ORDER BY seq DESC LIMIT 10"
            ),
            "(text)",
            f"('{accounts}')",
        ),
    }
    plans: dict[str, str] = {}
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL plan_cache_mode = {plan_cache_mode}"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: otherwise read sequentially by cost
        for name, (statement, types, values) in statements.items():
            plans[name] = prepared_plan(conn, name, statement, types, values)
    engine.dispose()
    assert "transfers_transfer_id_key" in plans["taken"] and "holds_pkey" in plans["taken"], plans["taken"]
    assert "Index Cond: ((hold_id >= $0) AND (hold_id <= $1))" in plans["held"], plans["held"]
    assert "transfers_transfer_id_key" in plans["held"], plans["held"]
    assert "Conflict Arbiter Indexes: uq_lots_key" in plans["lots"], plans["lots"]
    assert "Conflict Arbiter Indexes: accounts_pkey" in plans["users"], plans["users"]
    assert "ix_transfers_credit" in plans["statement"], plans["statement"]
    assert all("Seq Scan on" not in plan.replace("Seq Scan on pg_", "") for plan in plans.values()), plans


def _upgrade(engine: Engine, revision: str) -> None:
    config = alembic_config("ledger_svc", engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config("ledger_svc", engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()
