"""Daily cap counters in the store: locked and written once each, races on new counters seen, and on PostgreSQL
the statements probe the key index whatever the planner estimates and do what their portable twins do
(docs/adr/0407-cap-counters-as-text-columns.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import Connection, Engine, TextClause, text

from ingest_svc.domain.scoring import CapKey
from ingest_svc.store import caps, pg
from tests.plans import parameter_names, prepared_plan

DAY = date(2026, 11, 1)
TABLE_ROWS = 30_000  # a mid-sized table: where a join with exact row counts turned into a hash join over all of it
BATCH_KEYS = 500


def _key(n: int, behaviour: str = "transit_trip", day: date = DAY) -> CapKey:
    return (f"11{n:014d}", behaviour, day)


def test_counters_written_are_locked_and_read_back_and_overwritten_once(engine: Engine) -> None:
    first, second, third = _key(1), _key(1, "bike_km"), _key(2, day=date(2026, 11, 2))
    with engine.begin() as conn:
        assert caps.lock_cap_counters(conn, [first, second]) == {}
        assert caps.write_cap_counters(conn, {}, {first: 1000, second: 2500})
    with engine.begin() as conn:
        locked = caps.lock_cap_counters(conn, [second, first, third, first])
        assert locked == {first: 1000, second: 2500}
        assert caps.write_cap_counters(conn, locked, {first: 3000, second: 2500, third: 500})
    with engine.begin() as conn:
        assert caps.lock_cap_counters(conn, [first, second, third]) == {first: 3000, second: 2500, third: 500}


@pytest.mark.postgres
def test_a_new_counter_a_concurrent_batch_created_first_is_reported_and_not_overwritten(
    postgres_engine: Engine,
) -> None:
    """(SQLite needs no such check: a batch's transaction holds the database's only write lock.)"""
    engine = postgres_engine
    taken, free = _key(7), _key(8)
    with engine.connect() as conn:
        locked = caps.lock_cap_counters(conn, [taken, free])
        with engine.begin() as other:  # the concurrent batch commits its new counter first
            assert caps.write_cap_counters(other, {}, {taken: 400})
        assert not caps.write_cap_counters(conn, locked, {taken: 900, free: 100})
        conn.rollback()  # as the service does before it redoes the batch
    with engine.begin() as conn:
        assert caps.lock_cap_counters(conn, [taken, free]) == {taken: 400}


@pytest.mark.postgres
def test_cap_counters_keep_room_for_hot_updates_on_a_migrated_database(postgres_engine: Engine) -> None:
    engine = postgres_engine
    with engine.connect() as conn:
        options = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE oid = 'ingest_cap_counters'::regclass")
        ).scalar_one()
    assert options == ["fillfactor=70"]


@pytest.mark.postgres
def test_a_behaviour_code_with_a_comma_is_refused_not_split(postgres_engine: Engine) -> None:
    engine = postgres_engine
    with engine.begin() as conn, pytest.raises(ValueError, match="comma"):
        caps.lock_cap_counters(conn, [_key(1, "bike,km")])


@pytest.mark.postgres
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
def test_cap_statements_probe_the_key_index_on_a_mid_sized_table(postgres_engine: Engine, plan_cache_mode: str) -> None:
    engine = postgres_engine
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ingest_cap_counters (account_number, behaviour, day, counted_milli) "
                "SELECT '11' || lpad(n::text, 14, '0'), 'transit_trip', :day, 1000 FROM generate_series(1, :rows) n"
            ),
            {"day": DAY, "rows": TABLE_ROWS},
        )
        conn.execute(text("ANALYZE ingest_cap_counters"))
    keys = sorted(_key(n) for n in range(1, TABLE_ROWS, TABLE_ROWS // BATCH_KEYS))
    fresh = [_key(TABLE_ROWS + n) for n in range(10)]
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL plan_cache_mode = {plan_cache_mode}"))
        lock_plan = _plan(conn, pg._LOCK_CAPS, pg._cap_columns(keys, ""))
        write = {
            **pg._cap_columns(fresh, "fresh_"),
            "fresh_totals": ",".join("1" for _ in fresh),
            **pg._cap_columns(keys, "locked_"),
            "locked_totals": ",".join("2000" for _ in keys),
        }
        write_plan = _plan(conn, pg._WRITE_CAPS, write)
    assert "Seq Scan" not in lock_plan and "Index Scan using ingest_cap_counters_pkey" in lock_plan
    assert "Seq Scan" not in write_plan and "Hash" not in write_plan


def _plan(conn: Connection, statement: TextClause, params: dict[str, str]) -> str:
    """The statement's plan when PostgreSQL runs it prepared, every parameter text."""
    names = parameter_names(statement)
    # EXECUTE takes no bound parameters: the test's values are literals (digits, letters, commas, dashes).
    assert all(value.replace(",", "").replace("-", "").replace("_", "").isalnum() for value in params.values())
    types = f"({', '.join('text' for _ in names)})"
    return prepared_plan(conn, "cap_statement", statement, types, f"({', '.join(repr(params[n]) for n in names)})")


@pytest.mark.postgres
def test_the_postgresql_cap_statements_read_and_write_what_the_portable_ones_do(postgres_engine: Engine) -> None:
    engine = postgres_engine

    def run(first: int, lock: Callable[..., dict[CapKey, int]], write: Callable[..., object]) -> list[int]:
        """Four of six counters exist; all six are locked and written; what each counter reads afterwards."""
        keys = [_key(first + n % 3, ("transit_trip", "bike_km")[n % 2]) for n in range(6)]
        with engine.begin() as conn:
            caps.write_cap_counters_portably(conn, [(k, 1000 * n, True) for n, k in enumerate(keys[:4])])
        with engine.begin() as conn:
            locked = lock(conn, keys)
            write(conn, [(k, 7 * n + locked.get(k, 0), k not in locked) for n, k in enumerate(keys)])
        with engine.connect() as conn:
            found = caps.read_cap_counters_portably(conn, keys)
        return [locked.get(k, -1) for k in keys] + [found[k] for k in keys]

    postgresql = run(100, pg.lock_cap_counters, pg.write_cap_counters)
    portable = run(200, caps.read_cap_counters_portably, caps.write_cap_counters_portably)
    assert postgresql == portable
    assert postgresql[:6] == [0, 1000, 2000, 3000, -1, -1]
