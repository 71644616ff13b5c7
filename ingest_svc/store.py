"""Tables and queries of ingest_svc (SQLAlchemy 2.x): the only module that knows SQL.

Works on PostgreSQL and SQLite alike (both support INSERT .. ON CONFLICT and RETURNING). Times are stored UTC.
On PostgreSQL the per-batch statements on events and caps live in store_pg (the batch as one parameter per column
or one JSON document).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ingest_svc import store_pg
from service_kit.db import opaque_key

metadata = MetaData()


behaviours = Table(
    "ingest_behaviours",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name_en", String(200), nullable=False),
    Column("name_zh", String(200), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("region_code", String(6), nullable=False, server_default=""),
    Column("tiered", Boolean, nullable=False, server_default="0"),
)

rule_versions = Table(
    "ingest_rule_versions",
    metadata,
    Column("rule_version_id", String(128), primary_key=True),
    Column("behaviour", String(64), nullable=False),
    Column("region_code", String(6), nullable=False, server_default=""),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("points_per_unit", BigInteger, nullable=False),
    Column("co2e_milligrams_per_unit", BigInteger, nullable=False),
    Column("co2e_unit", String(200), nullable=False),
    Column("co2e_source", Text, nullable=False),
    Column("co2e_derivation", Text, nullable=False, server_default=""),
    Column("daily_cap_milli", BigInteger, nullable=False),
    Column("max_quantity_milli", BigInteger, nullable=False),
    Column("tier_points", Text, nullable=False, server_default="{}"),  # JSON object
    Column("created_at", DateTime(timezone=True), nullable=False),
)

partners = Table(
    "ingest_partners",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("allowed_behaviours", Text, nullable=False),  # JSON list
    Column("allowed_regions", Text, nullable=False),  # JSON list
    Column("rate_limit_per_second", Integer, nullable=False),
    Column("active_key_id", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

partner_keys = Table(
    "ingest_partner_keys",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    # AES-256-GCM ciphertext of the secret (see docs/adr/0402-partner-secrets-encrypted-at-rest.md).
    Column("secret_ciphertext", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=True),
    Column("request_id", String(128), nullable=True, unique=True),
)

# One row per accepted event; (partner_id, event_id) is the idempotency key and the last word on duplicates.
events = Table(
    "ingest_events",
    metadata,
    Column("partner_id", opaque_key(64), primary_key=True),
    Column("event_id", opaque_key(128), primary_key=True),
    Column("batch_id", String(128), nullable=False),
    Column("account_number", String(16), nullable=False),
    Column("behaviour", String(64), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),  # China Standard Time
    Column("quantity_milli", BigInteger, nullable=False),
    Column("tier", String(32), nullable=False),
    Column("evidence_ref", String(512), nullable=False),
    Column("rule_version_id", String(128), nullable=False),
    Column("counted_before_milli", BigInteger, nullable=False),
    Column("counted_milli", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("co2e_grams", BigInteger, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("transfer_id", String(64), nullable=False),
    # As written: PENDING (to credit) or NO_CREDIT (zero points); LEDGER_FAILED when the ledger refused it. A PENDING
    # event whose credit batch is POSTED reads as CREDITED (docs/adr/0405-credit-batches-as-an-outbox.md).
    Column("status", String(16), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Column("credit_batch_id", String(40), nullable=False, server_default=""),
)

# The outbox: one row per recording transaction that owes the ledger credits, listing the events it owes.
credit_batches = Table(
    "ingest_credit_batches",
    metadata,
    Column("credit_batch_id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False),
    Column("event_ids", Text, nullable=False),  # JSON list of the batch's PENDING events
    Column("state", String(16), nullable=False),  # PENDING -> POSTED
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=True),
    Index("ix_ingest_credit_batches_state", "state", "created_at"),
)

cap_counters = Table(
    "ingest_cap_counters",
    metadata,
    Column("account_number", opaque_key(16), primary_key=True),
    Column("behaviour", opaque_key(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("counted_milli", BigInteger, nullable=False),
    # Room on each page so that a batch's update of a counter stays on its page with no new index entry (HOT): a
    # counter is rewritten by every batch that counts for it on its day. ADR 0407, migration ingest_0003.
    postgresql_with={"fillfactor": 70},
)

daily_stats = Table(
    "ingest_daily_stats",
    metadata,
    Column("region_code", String(6), primary_key=True),
    Column("behaviour", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("events", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("co2e_grams", BigInteger, nullable=False),
)

CHUNK_ROWS = 500
COPY_MIN_ROWS = 32  # below this, COPY's extra round trips cost more than the INSERT's per-row work saves
# Event statuses as stored (PENDING, NO_CREDIT, LEDGER_FAILED) and as read (CREDITED); credit batch states.
PENDING, NO_CREDIT, CREDITED, LEDGER_FAILED = "PENDING", "NO_CREDIT", "CREDITED", "LEDGER_FAILED"
POSTED = "POSTED"
CapKey = tuple[str, str, date]


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _chunks(items: Sequence[Any], size: int = CHUNK_ROWS) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- rules ---------------------------------------------------------------------------------------------------------


def insert_behaviours_if_missing(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(_insert(conn, behaviours).on_conflict_do_nothing(), list(rows))


def all_behaviours(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(select(behaviours).order_by(behaviours.c.code))]


def insert_rule_if_missing(conn: Connection, row: Mapping[str, Any]) -> bool:
    result = conn.execute(
        _insert(conn, rule_versions).on_conflict_do_nothing().returning(rule_versions.c.rule_version_id), [dict(row)]
    )
    return result.first() is not None


def rule_by_id(conn: Connection, rule_version_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(rule_versions).where(rule_versions.c.rule_version_id == rule_version_id)).first()
    return dict(row._mapping) if row else None


def all_rules(conn: Connection) -> list[dict[str, Any]]:
    query = select(rule_versions).order_by(
        rule_versions.c.behaviour, rule_versions.c.region_code, rule_versions.c.effective_from
    )
    return [dict(row._mapping) for row in conn.execute(query)]


# --- partners ------------------------------------------------------------------------------------------------------


def insert_partner(conn: Connection, row: Mapping[str, Any], key_row: Mapping[str, Any]) -> bool:
    """False when the partner id exists already (nothing written)."""
    inserted = conn.execute(
        _insert(conn, partners).on_conflict_do_nothing().returning(partners.c.partner_id), [dict(row)]
    ).first()
    if inserted is None:
        return False
    conn.execute(partner_keys.insert(), [dict(key_row)])
    return True


def partner_row(conn: Connection, partner_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(partners).where(partners.c.partner_id == partner_id)).first()
    return dict(row._mapping) if row else None


def list_partner_rows(conn: Connection, after: str, limit: int) -> list[dict[str, Any]]:
    query = select(partners).where(partners.c.partner_id > after).order_by(partners.c.partner_id).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]


def key_rows(conn: Connection, partner_id: str) -> list[dict[str, Any]]:
    query = select(partner_keys).where(partner_keys.c.partner_id == partner_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def key_by_request(conn: Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(partner_keys).where(partner_keys.c.request_id == request_id)).first()
    return dict(row._mapping) if row else None


def rotate_key(conn: Connection, partner_id: str, new_key: Mapping[str, Any], old_valid_until: datetime) -> None:
    conn.execute(
        update(partner_keys)
        .where(partner_keys.c.partner_id == partner_id, partner_keys.c.valid_until.is_(None))
        .values(valid_until=old_valid_until)
    )
    conn.execute(partner_keys.insert(), [dict(new_key)])
    conn.execute(update(partners).where(partners.c.partner_id == partner_id).values(active_key_id=new_key["key_id"]))


# --- events, caps, statistics ----------------------------------------------------------------------------------------


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _read_events() -> Any:
    """Event rows as the service reads them: a PENDING event whose credit batch was POSTED reads CREDITED."""
    posted = (events.c.status == PENDING) & (credit_batches.c.state == POSTED)
    status = case((posted, literal(CREDITED)), else_=events.c.status).label("status")
    columns = [column for column in events.c if column.name != "status"]
    joined = events.outerjoin(credit_batches, credit_batches.c.credit_batch_id == events.c.credit_batch_id)
    return select(*columns, status).select_from(joined)


# Built once, like the other per-batch statements (the PostgreSQL twin is store_pg._FIND_EVENTS).
_FIND_EVENTS = _read_events().where(
    events.c.partner_id == bindparam("partner_id"), events.c.event_id.in_(bindparam("ids"))
)


def find_events(conn: Connection, partner_id: str, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if not event_ids:
        return found
    if _postgres(conn):
        return store_pg.find_events(conn, partner_id, event_ids)
    for chunk in _chunks(event_ids):
        for row in conn.execute(_FIND_EVENTS, {"partner_id": partner_id, "ids": list(chunk)}):
            found[row.event_id] = dict(row._mapping)
    return found


def insert_events(conn: Connection, rows: Sequence[Any], surely_new: bool = False) -> set[str]:
    """Inserts accepted events (records.EventRow: named tuples in column order); returns the ids actually inserted
    (a concurrent twin makes one a no-op).

    `surely_new`: nothing suggests any exists, so PostgreSQL writes them by COPY, and one that does exist fails the
    transaction with an IntegrityError (the caller redoes it without this promise).
    """
    if not rows:
        return set()
    if _postgres(conn) and surely_new and len(rows) >= COPY_MIN_ROWS:
        store_pg.copy_events(conn, rows)
        return {row.event_id for row in rows}
    mappings = [row._asdict() for row in rows]
    if _postgres(conn):
        return store_pg.insert_events(conn, mappings)
    statement = _insert(conn, events).on_conflict_do_nothing().returning(events.c.event_id)
    return {row.event_id for row in conn.execute(statement, mappings)}


def lock_cap_counters(conn: Connection, keys: Iterable[CapKey]) -> dict[CapKey, int]:
    """The counters that exist among `keys`, locked for this transaction (in key order, which store_pg sorts, so
    two batches never deadlock). A missing key has counted nothing yet; write_cap_counters creates it."""
    unique = list(set(keys))
    if not unique:
        return {}
    if _postgres(conn):
        return store_pg.lock_cap_counters(conn, unique)
    # SQLite: the transaction (BEGIN IMMEDIATE) already holds the database's only write lock.
    counted: dict[CapKey, int] = {}
    accounts = sorted({key[0] for key in unique})
    query = select(cap_counters).where(cap_counters.c.account_number.in_(bindparam("accounts")))
    wanted = set(unique)
    for chunk in _chunks(accounts):
        for row in conn.execute(query, {"accounts": list(chunk)}):
            key = (row.account_number, row.behaviour, row.day)
            if key in wanted:
                counted[key] = row.counted_milli
    return counted


def write_cap_counters(conn: Connection, locked: Mapping[CapKey, int], totals: Mapping[CapKey, int]) -> bool:
    """Writes the new totals once each: locked counters updated, missing ones created. False (write nothing more;
    roll back) when a concurrent batch created one of the missing counters first."""
    # Unsorted: store_pg inserts new counters in key order and updates only counters this transaction locked.
    changes = [(key, total, key not in locked) for key, total in totals.items() if total != locked.get(key)]
    if not changes:
        return True
    if _postgres(conn):
        return store_pg.write_cap_counters(conn, changes)
    statement = _insert(conn, cap_counters)
    statement = statement.on_conflict_do_update(
        index_elements=[cap_counters.c.account_number, cap_counters.c.behaviour, cap_counters.c.day],
        set_={"counted_milli": statement.excluded.counted_milli},
    )
    rows = [{"account_number": a, "behaviour": b, "day": d, "counted_milli": n} for (a, b, d), n, _fresh in changes]
    conn.execute(statement, rows)
    return True


_STATISTICS_UPSERTS: dict[str, Any] = {}


def _statistics_upsert(conn: Connection) -> Any:
    """Built once per dialect: constructing the upsert (and its cache key) per batch cost more than running it."""
    statement = _STATISTICS_UPSERTS.get(conn.dialect.name)
    if statement is None:
        statement = _insert(conn, daily_stats)
        statement = _STATISTICS_UPSERTS[conn.dialect.name] = statement.on_conflict_do_update(
            index_elements=[daily_stats.c.region_code, daily_stats.c.behaviour, daily_stats.c.day],
            set_={
                "events": daily_stats.c.events + statement.excluded.events,
                "points": daily_stats.c.points + statement.excluded.points,
                "co2e_grams": daily_stats.c.co2e_grams + statement.excluded.co2e_grams,
            },
        )
    return statement


def add_statistics(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        ordered = sorted(rows, key=lambda r: (r["region_code"], r["behaviour"], r["day"]))
        conn.execute(_statistics_upsert(conn), ordered)


def set_status(conn: Connection, partner_id: str, event_ids: Sequence[str], status: str) -> None:
    """Only for the rare per-event outcome (LEDGER_FAILED): crediting marks the whole credit batch instead."""
    if not event_ids:
        return
    statement = (
        update(events)
        .where(events.c.partner_id == partner_id, events.c.event_id.in_(bindparam("ids")))
        .values(status=status)
    )
    for chunk in _chunks(event_ids):
        conn.execute(statement, {"ids": list(chunk)})


# --- credit batches (the outbox) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditBatch:
    credit_batch_id: str
    partner_id: str
    event_ids: list[str]


# Built once: a statement constructed per call costs SQLAlchemy its cache key every time, which single-event
# submissions pay per event.
_INSERT_CREDIT_BATCH = credit_batches.insert()
_MARK_CREDIT_BATCH_POSTED = (
    update(credit_batches)
    .where(credit_batches.c.credit_batch_id == bindparam("b"), credit_batches.c.state == PENDING)
    .values(state=POSTED, posted_at=bindparam("now"))
)


def insert_credit_batch(conn: Connection, batch: CreditBatch, now: datetime) -> None:
    row = {
        "credit_batch_id": batch.credit_batch_id,
        "partner_id": batch.partner_id,
        "event_ids": json.dumps(batch.event_ids),
        "state": PENDING,
        "created_at": now,
    }
    conn.execute(_INSERT_CREDIT_BATCH, [row])


def mark_credit_batch_posted(conn: Connection, credit_batch_id: str, now: datetime) -> None:
    conn.execute(_MARK_CREDIT_BATCH_POSTED, {"b": credit_batch_id, "now": now})


def pending_credit_batches(conn: Connection, limit: int, ids: Sequence[str] = ()) -> list[CreditBatch]:
    """The oldest credit batches still owed to the ledger (or, given `ids`, those of them still owed)."""
    query = select(credit_batches).where(credit_batches.c.state == PENDING)
    if ids:
        query = query.where(credit_batches.c.credit_batch_id.in_(list(ids)))
    query = query.order_by(credit_batches.c.created_at).limit(limit)
    return [CreditBatch(r.credit_batch_id, r.partner_id, json.loads(r.event_ids)) for r in conn.execute(query)]


def statistics(
    conn: Connection, region_code: str, from_day: date | None, to_day: date | None, behaviour: str
) -> list[dict[str, Any]]:
    query = select(daily_stats)
    if region_code:
        query = query.where(daily_stats.c.region_code == region_code)
    if behaviour:
        query = query.where(daily_stats.c.behaviour == behaviour)
    if from_day:
        query = query.where(daily_stats.c.day >= from_day)
    if to_day:
        query = query.where(daily_stats.c.day <= to_day)
    query = query.order_by(daily_stats.c.day, daily_stats.c.region_code, daily_stats.c.behaviour)
    return [dict(row._mapping) for row in conn.execute(query)]
