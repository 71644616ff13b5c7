"""Event keys and cap counter keys compare byte by byte on PostgreSQL (ADR 0409): the migration gives the columns the
collation store/tables.py declares, events and counters survive the upgrade, and the batch statements still probe
the key indexes under custom and generic plans."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, text

from ingest_svc.store import caps, events, pg, tables
from service_kit.db import make_engine, migrate
from tests.collations import column_collations, declared_postgresql_collations
from tests.ingest.test_migrations import _event, alembic
from tests.plans import prepared_plan

BYTE_ORDERED = {
    ("ingest_events", "partner_id"),
    ("ingest_events", "event_id"),
    ("ingest_cap_counters", "account_number"),
    ("ingest_cap_counters", "behaviour"),
    # The holders of DUPLICATE_ACTIVITY events, keyed like the events (migration ingest_0006 creates them so).
    ("ingest_activity_holders", "partner_id"),
    ("ingest_activity_holders", "event_id"),
}


def test_the_tables_declare_byte_order_for_the_opaque_keys_on_postgresql_only() -> None:
    declared = declared_postgresql_collations(tables.metadata)
    assert {key for key, collation in declared.items() if collation == "C"} == BYTE_ORDERED
    assert all(tables.metadata.tables[t].c[c].type.collation is None for t, c in BYTE_ORDERED)  # type: ignore[attr-defined]


def test_upgrading_keeps_events_and_cap_counters(database_url: str) -> None:
    engine = make_engine(database_url)
    alembic(engine, "upgrade", "ingest_0003")
    key = ("1100000000000001", "transit_trip", date(2026, 11, 1))
    row = _event("e1", "PENDING")
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO ingest_events ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"), row
        )
        caps.write_cap_counters(conn, {}, {key: 1500})
    migrate("ingest_svc", engine)
    with engine.begin() as conn:
        assert list(events.find_events(conn, "metro", ["e1", "e2"])) == ["e1"]
        assert caps.lock_cap_counters(conn, [key]) == {key: 1500}
        if engine.dialect.name == "postgresql":
            assert column_collations(conn) == declared_postgresql_collations(tables.metadata)
    if engine.dialect.name == "postgresql":
        alembic(engine, "downgrade", "ingest_0003")
        with engine.connect() as conn:
            assert all(collation is None for collation in column_collations(conn).values())
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
def test_batch_statements_probe_the_key_indexes(postgres_engine: Engine, plan_cache_mode: str) -> None:
    engine = postgres_engine
    statements = {
        "find": (pg._FIND_EVENTS, "(text, text)", "('[\"e1\", \"e2\"]', 'metro')"),
        "lock": (pg._LOCK_CAPS, "(text, text, text)", "('1100000000000001', 'transit_trip', '2026-11-01')"),
    }
    plans: dict[str, str] = {}
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL plan_cache_mode = {plan_cache_mode}"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: otherwise read sequentially by cost
        for name, (statement, types, values) in statements.items():
            plans[name] = prepared_plan(conn, name, statement, types, values)
    assert "Index Scan using ingest_events_pkey" in plans["find"], plans["find"]
    assert "Index Scan using ingest_cap_counters_pkey" in plans["lock"], plans["lock"]
    assert all("Seq Scan" not in plan for plan in plans.values()), plans
