"""Schema upgrades keep what is owed: events left PENDING under the per-event design become one owed credit batch."""

from __future__ import annotations

from datetime import UTC, date, datetime

from alembic import command
from sqlalchemy import Engine, text

from ingest_svc.store import caps, credit_batches, events
from service_kit.db import alembic_config, make_engine, migrate


def _event(event_id: str, status: str) -> dict[str, object]:
    now = datetime(2026, 11, 1, 2, tzinfo=UTC)
    return {
        "partner_id": "metro",
        "event_id": event_id,
        "batch_id": "b1",
        "account_number": "1100000000000001",
        "behaviour": "transit_trip",
        "region_code": "110000",
        "occurred_at": now,
        "day": date(2026, 11, 1),
        "quantity_milli": 1000,
        "tier": "",
        "evidence_ref": "",
        "rule_version_id": "transit_trip@2024-01-01",
        "counted_before_milli": 0,
        "counted_milli": 1000,
        "points": 10,
        "co2e_grams": 100,
        "reason": "",
        "message": "",
        "transfer_id": f"earn-{event_id}",
        "status": status,
        "accepted_at": now,
    }


def test_upgrading_gathers_pending_events_into_an_owed_credit_batch(database_url: str) -> None:
    engine = make_engine(database_url)
    alembic(engine, "upgrade", "ingest_0001")
    columns = ", ".join(_event("x", "PENDING"))
    values = ", ".join(f":{name}" for name in _event("x", "PENDING"))
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO ingest_events ({columns}) VALUES ({values})"),
            [_event("e1", "PENDING"), _event("e2", "CREDITED"), _event("e3", "PENDING"), _event("e4", "NO_CREDIT")],
        )
    migrate("ingest_svc", engine)
    with engine.connect() as conn:
        owed = credit_batches.pending_credit_batches(conn, 10)
        found = events.find_events(conn, "metro", ["e1", "e2", "e3", "e4"])
    assert [(b.partner_id, b.event_ids) for b in owed] == [("metro", ["e1", "e3"])]
    assert {e: row.status for e, row in found.items()} == {
        "e1": "PENDING",
        "e2": "CREDITED",
        "e3": "PENDING",
        "e4": "NO_CREDIT",
    }
    with engine.begin() as conn:
        credit_batches.mark_credit_batch_posted(conn, owed[0].credit_batch_id, datetime.now(UTC))
    with engine.connect() as conn:
        assert credit_batches.pending_credit_batches(conn, 10) == []
        assert events.find_events(conn, "metro", ["e1"])["e1"].status == "CREDITED"
    engine.dispose()


def test_upgrading_keeps_cap_counters_and_gives_their_table_room_on_postgresql(database_url: str) -> None:
    engine = make_engine(database_url)
    alembic(engine, "upgrade", "ingest_0002")
    key = ("1100000000000001", "transit_trip", date(2026, 11, 1))
    with engine.begin() as conn:
        caps.write_cap_counters(conn, {}, {key: 1500})
    migrate("ingest_svc", engine)
    with engine.begin() as conn:
        assert caps.lock_cap_counters(conn, [key]) == {key: 1500}
        if engine.dialect.name == "postgresql":
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE oid = 'ingest_cap_counters'::regclass"))
            assert options.scalar_one() == ["fillfactor=70"]
    engine.dispose()


def alembic(engine: Engine, action: str, revision: str) -> None:
    """Runs one alembic command ("upgrade" or "downgrade") of ingest's migrations to `revision`."""
    config = alembic_config("ingest_svc", engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)
        conn.commit()
