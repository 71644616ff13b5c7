"""Activity claims and their conflicts (docs/adr/0606-activity-claims-at-the-gateway.md).

Claims are kept per activity day so that old days drop whole: on PostgreSQL the table is partitioned by day (a day's
partition is made before its first claim and dropped as a table once past retention); on SQLite, the embedded
default, one table whose primary key starts with the day, and a day is dropped by one range delete on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import date, datetime, timedelta

from sqlalchemy import (
    Column,
    Connection,
    Date,
    LargeBinary,
    String,
    Table,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, ProgrammingError

from gateway.domain.claims import Claim, ConflictCount, Holder
from gateway.store.tables import metadata
from service_kit.db import UtcDateTime

CLAIMS_TABLE = "gateway_activity_claims"

activity_claims = Table(
    CLAIMS_TABLE,
    metadata,
    Column("day", Date, primary_key=True),  # the activity's CST day; the partition key on PostgreSQL
    Column("fingerprint", LargeBinary(32), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("claimed_at", UtcDateTime(), nullable=False),
)

# One row per refused claim (a claimant, once, however often it retries), kept as long as the claims.
claim_conflicts = Table(
    "gateway_claim_conflicts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("fingerprint", LargeBinary(32), primary_key=True),
    Column("claimant_region", String(6), primary_key=True),
    Column("claimant_partner", String(64), primary_key=True),
    Column("claimant_event_id", String(128), primary_key=True),
    Column("holder_region", String(6), nullable=False),
    Column("holder_partner", String(64), nullable=False),
    Column("holder_event_id", String(128), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

# One statement text whatever the batch size: the batch travels as five arrays (PostgreSQL).
_PG_INSERT = text(
    f"INSERT INTO {CLAIMS_TABLE} (day, fingerprint, key_id, region_code, partner_id, event_id, claimed_at) "
    "SELECT c.day, c.fingerprint, c.key_id, :region, c.partner_id, c.event_id, :now "
    "FROM unnest(CAST(:days AS date[]), CAST(:fingerprints AS bytea[]), CAST(:key_ids AS text[]), "
    "CAST(:partner_ids AS text[]), CAST(:event_ids AS text[])) AS c(day, fingerprint, key_id, partner_id, event_id) "
    "ON CONFLICT (day, fingerprint) DO NOTHING RETURNING day, fingerprint"
)
_PG_HOLDERS = text(
    f"SELECT h.day, h.fingerprint, h.region_code, h.partner_id, h.event_id FROM {CLAIMS_TABLE} AS h "
    "JOIN unnest(CAST(:days AS date[]), CAST(:fingerprints AS bytea[])) AS k(day, fingerprint) "
    "ON h.day = k.day AND h.fingerprint = k.fingerprint"
)
_PG_PARTITIONS = text(
    "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
    f"WHERE i.inhparent = CAST('{CLAIMS_TABLE}' AS regclass)"
)

Key = tuple[date, bytes]


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def partition_name(day: date) -> str:
    return f"{CLAIMS_TABLE}_{day:%Y%m%d}"


def ensure_partitions(conn: Connection, days: Iterable[date]) -> None:
    """PostgreSQL: the day partitions these claims go into (made once; concurrent makers may both try)."""
    if not is_postgres(conn):
        return
    for day in sorted(set(days)):
        statement = (
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {CLAIMS_TABLE} "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )
        # Another process may make it between IF NOT EXISTS and the create: then it exists, which is all we need.
        with suppress(ProgrammingError, IntegrityError), conn.begin_nested():
            conn.execute(text(statement))


def drop_days_before(conn: Connection, first_kept: date) -> int:
    """Drops every claim (and conflict) of days before `first_kept`; returns how many days' partitions went (0 on
    SQLite, where a range delete on the key's leading day does it)."""
    conn.execute(delete(claim_conflicts).where(claim_conflicts.c.day < first_kept))
    if not is_postgres(conn):
        conn.execute(delete(activity_claims).where(activity_claims.c.day < first_kept))
        return 0
    dropped = 0
    for (name,) in conn.execute(_PG_PARTITIONS):
        if name < partition_name(first_kept):
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            dropped += 1
    return dropped


def insert_claims(conn: Connection, region_code: str, claims: Sequence[Claim], now: datetime) -> set[Key]:
    """Inserts the claims whose (day, fingerprint) nobody holds yet; returns the keys inserted. `claims` hold each
    key once."""
    if not claims:
        return set()
    if is_postgres(conn):
        rows = conn.execute(
            _PG_INSERT,
            {
                "region": region_code,
                "now": now,
                "days": [c.day for c in claims],
                "fingerprints": [c.fingerprint for c in claims],
                "key_ids": [c.key_id for c in claims],
                "partner_ids": [c.partner_id for c in claims],
                "event_ids": [c.event_id for c in claims],
            },
        )
        return {(row.day, bytes(row.fingerprint)) for row in rows}
    # SQLite writes one transaction at a time (BEGIN IMMEDIATE): what is not held now is ours to insert.
    held = holders(conn, [(c.day, c.fingerprint) for c in claims])
    new = [c for c in claims if (c.day, c.fingerprint) not in held]
    if new:
        conn.execute(
            sqlite.insert(activity_claims),
            [
                {
                    "day": c.day,
                    "fingerprint": c.fingerprint,
                    "key_id": c.key_id,
                    "region_code": region_code,
                    "partner_id": c.partner_id,
                    "event_id": c.event_id,
                    "claimed_at": now,
                }
                for c in new
            ],
        )
    return {(c.day, c.fingerprint) for c in new}


def holders(conn: Connection, keys: Sequence[Key]) -> dict[Key, Holder]:
    if not keys:
        return {}
    if is_postgres(conn):
        params = {"days": [k[0] for k in keys], "fingerprints": [k[1] for k in keys]}
        rows = conn.execute(_PG_HOLDERS, params)
    else:
        c = activity_claims.c
        query = select(c.day, c.fingerprint, c.region_code, c.partner_id, c.event_id)
        rows = conn.execute(query.where(tuple_(c.day, c.fingerprint).in_(list(keys))))
    return {(r.day, bytes(r.fingerprint)): Holder(r.region_code, r.partner_id, r.event_id) for r in rows}


def record_conflicts(
    conn: Connection, region_code: str, conflicts: Sequence[tuple[Claim, Holder]], now: datetime
) -> None:
    """One row per refused claimant; a retry of the same claim adds nothing."""
    if not conflicts:
        return
    insert = (postgresql.insert if is_postgres(conn) else sqlite.insert)(claim_conflicts)
    rows = [
        {
            "day": claim.day,
            "fingerprint": claim.fingerprint,
            "claimant_region": region_code,
            "claimant_partner": claim.partner_id,
            "claimant_event_id": claim.event_id,
            "holder_region": holder.region_code,
            "holder_partner": holder.partner_id,
            "holder_event_id": holder.event_id,
            "recorded_at": now,
        }
        for claim, holder in conflicts
    ]
    conn.execute(insert.on_conflict_do_nothing(), rows)


def conflict_counts(conn: Connection, first: date, last: date) -> list[ConflictCount]:
    c = claim_conflicts.c
    pair = (c.day, c.holder_region, c.holder_partner, c.claimant_region, c.claimant_partner)
    count = func.count().label("conflicts")
    query = (
        select(*pair, count)
        .where(c.day >= first, c.day <= last)
        .group_by(*pair)
        .order_by(c.day, count.desc(), *pair[1:])
    )
    return [
        ConflictCount(r.day, r.holder_region, r.holder_partner, r.claimant_region, r.claimant_partner, int(r.conflicts))
        for r in conn.execute(query)
    ]
