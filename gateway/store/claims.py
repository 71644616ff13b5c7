"""Activity claims and their conflicts (docs/adr/0606-activity-claims-at-the-gateway.md).

Claims are kept per activity day so that old days drop whole: on PostgreSQL the table is partitioned by day (a day's
partition is made before its first claim and dropped as a table once past retention); on SQLite, the embedded
default, one table whose primary key starts with the day, and a day is dropped by one range delete on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import date, datetime, timedelta

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    false,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, ProgrammingError

from gateway.domain.claims import (
    FINGERPRINT_BYTES,
    AttemptClaims,
    Claim,
    ClaimColumns,
    ConflictCount,
    Holder,
    Release,
)
from gateway.store.tables import metadata
from service_kit.db import UtcDateTime
from service_kit.wire import from_unix_us

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
    # The claimant's attempt that inserted it when claimed ahead of recording (ADR 0415), else NULL.
    Column("attempt_id", String(64), nullable=True),
)

# One row per attempt that claimed ahead of recording (ADR 0416, migration gateway_0006): its claims' keys as one value,
# so the claimant's sweep lists a region's old attempts through this small index (one row per credit batch) and the
# claims table (a billion rows a day) needs no second index.
claim_attempts = Table(
    "gateway_claim_attempts",
    metadata,
    Column("region_code", String(6), primary_key=True),
    Column("attempt_id", String(64), primary_key=True),
    Column("claimed_at", UtcDateTime(), nullable=False),
    Column("fingerprints", LargeBinary, nullable=False),  # 32 bytes per claim, in the claim's order
    Column("days", Text, nullable=False),  # JSON list of each claim's ISO day
    # A recorded=true claim came under this attempt: it recorded its events, nothing of it is to be swept.
    Column("recorded", Boolean, nullable=False, server_default=false()),
    Index("ix_gateway_claim_attempts_listing", "region_code", "claimed_at", "attempt_id"),
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

# One statement text whatever the batch size. The batch travels as four JSON arrays of text and one bytea of the
# fingerprints end to end (32 bytes each), zipped in the database by position: a parameter each, with nothing done per
# claim in Python (psycopg binds a Python list element by element). Rows go in by key, the batch's order breaking ties:
# the first claim of a key in the batch holds it, and concurrent batches take their keys' locks in one order.
_PG_BATCH = (
    "ROWS FROM (json_array_elements_text(CAST(:days AS json)), json_array_elements_text(CAST(:key_ids AS json)), "
    "json_array_elements_text(CAST(:partner_ids AS json)), json_array_elements_text(CAST(:event_ids AS json))) "
    "WITH ORDINALITY AS c(day, key_id, partner_id, event_id, n)"
)
_PG_FINGERPRINT = (
    f"substring(CAST(:fingerprints AS bytea) "
    f"FROM (CAST(c.n AS integer) - 1) * {FINGERPRINT_BYTES} + 1 FOR {FINGERPRINT_BYTES})"
)
_PG_INSERT_ROWS = (
    f"INSERT INTO {CLAIMS_TABLE} "
    "(day, fingerprint, key_id, region_code, partner_id, event_id, claimed_at, attempt_id) "
    f"SELECT CAST(c.day AS date), {_PG_FINGERPRINT}, c.key_id, :region, c.partner_id, c.event_id, :now, "
    f"CAST(:attempt AS varchar) FROM {_PG_BATCH} ORDER BY 1, 2, c.n"
)
_PG_INSERT = text(f"{_PG_INSERT_ROWS} ON CONFLICT (day, fingerprint) DO NOTHING")
# The common case, all claims new, as one statement run on its own (autocommit): the claims without ON CONFLICT, whose
# speculative insertion costs PostgreSQL an index probe and a third WAL record per row, and the attempt kept for the
# sweep (ADR 0416) from the same parameters. A held or repeated key fails the whole statement; nothing stays.
_PG_ATTEMPT_ROW = (
    "INSERT INTO gateway_claim_attempts (region_code, attempt_id, claimed_at, fingerprints, days, recorded) "
    "SELECT :region, CAST(:attempt AS varchar), :now, CAST(:fingerprints AS bytea), :days, false "
    "WHERE CAST(:attempt AS varchar) IS NOT NULL ON CONFLICT DO NOTHING"
)
_PG_ALL_NEW = text(f"WITH attempt AS ({_PG_ATTEMPT_ROW}) {_PG_INSERT_ROWS}")
_PG_HOLDERS = text(
    "SELECT CAST(c.n AS integer) - 1 AS position, h.region_code, h.partner_id, h.event_id, h.attempt_id "
    f"FROM {_PG_BATCH} JOIN {CLAIMS_TABLE} AS h "
    f"ON h.day = CAST(c.day AS date) AND h.fingerprint = {_PG_FINGERPRINT}"
)
# A recorded attempt takes over its events' claims that another attempt of the same claimant inserted (ADR 0415).
_PG_ADOPT = text(
    f"UPDATE {CLAIMS_TABLE} AS h SET attempt_id = CAST(:attempt AS varchar) FROM {_PG_BATCH} "
    f"WHERE h.day = CAST(c.day AS date) AND h.fingerprint = {_PG_FINGERPRINT} AND h.region_code = :region "
    "AND h.partner_id = c.partner_id AND h.event_id = c.event_id AND h.attempt_id <> CAST(:attempt AS varchar)"
)
_PG_RELEASE_KEYS = "ROWS FROM (json_array_elements_text(CAST(:days AS json))) WITH ORDINALITY AS c(day, n)"
_PG_RELEASE = text(
    f"DELETE FROM {CLAIMS_TABLE} AS h USING {_PG_RELEASE_KEYS} "
    f"WHERE h.day = CAST(c.day AS date) AND h.fingerprint = {_PG_FINGERPRINT} AND h.region_code = :region "
    "AND h.attempt_id = :attempt"
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


def insert_claims(conn: Connection, region_code: str, batch: ClaimColumns, now: datetime) -> int:
    """Inserts the claims whose (day, fingerprint) nobody holds yet, the first of the batch where it repeats a key;
    returns how many were inserted (all of them: every claiming event holds its activity)."""
    if not batch.size:
        return 0
    if is_postgres(conn):
        params = {"region": region_code, "now": now, "attempt": batch.attempt_id or None, **_pg_columns(batch)}
        return conn.execute(_PG_INSERT, params).rowcount
    # SQLite writes one transaction at a time (BEGIN IMMEDIATE): what is not held now is ours to insert.
    first_of: dict[Key, Claim] = {}
    for claim in batch.claims():
        first_of.setdefault((claim.day, claim.fingerprint), claim)
    held = _sqlite_holders(conn, list(first_of))
    new = [c for key, c in first_of.items() if key not in held]
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
                    "attempt_id": batch.attempt_id or None,
                }
                for c in new
            ],
        )
    return len(new)


def claims_all_new_at_once(conn: Connection) -> bool:
    """Whether `insert_all_new` can claim a batch in one statement here (PostgreSQL; SQLite takes the per-row path)."""
    return is_postgres(conn)


def insert_all_new(conn: Connection, region_code: str, batch: ClaimColumns, now: datetime) -> bool:
    """On an autocommit connection: inserts every claim of the batch, with its attempt when claimed ahead, in one
    statement, and True; False, with nothing written, when a key is held already or repeats in the batch."""
    params = {"region": region_code, "now": now, "attempt": batch.attempt_id or None, **_pg_columns(batch)}
    try:
        conn.execute(_PG_ALL_NEW, params)
    except IntegrityError:
        return False  # the claims' primary key: the caller's transaction sorts out who holds what
    return True


def holders(conn: Connection, batch: ClaimColumns) -> dict[int, tuple[Holder, str | None]]:
    """The holder of each claim's activity and the attempt its claim was inserted under, by the claim's position in
    the batch (all of them once it is inserted)."""
    if not batch.size:
        return {}
    if is_postgres(conn):
        rows = conn.execute(_PG_HOLDERS, _pg_columns(batch))
        return {r.position: (Holder(r.region_code, r.partner_id, r.event_id), r.attempt_id) for r in rows}
    claims = batch.claims()
    keys = [(c.day, c.fingerprint) for c in claims]
    held = _sqlite_holders(conn, keys)
    return {position: held[key] for position, key in enumerate(keys) if key in held}


def _pg_columns(batch: ClaimColumns) -> dict[str, object]:
    return {
        "fingerprints": b"".join(batch.fingerprints),
        "days": json.dumps(batch.days),
        "key_ids": json.dumps(batch.key_ids),
        "partner_ids": json.dumps(batch.partner_ids),
        "event_ids": json.dumps(batch.event_ids),
    }


def _sqlite_holders(conn: Connection, keys: Sequence[Key]) -> dict[Key, tuple[Holder, str | None]]:
    c = activity_claims.c
    query = select(c.day, c.fingerprint, c.region_code, c.partner_id, c.event_id, c.attempt_id)
    rows = conn.execute(query.where(tuple_(c.day, c.fingerprint).in_(list(keys))))
    return {
        (r.day, bytes(r.fingerprint)): (Holder(r.region_code, r.partner_id, r.event_id), r.attempt_id) for r in rows
    }


def adopt(conn: Connection, region_code: str, batch: ClaimColumns) -> None:
    """The batch's attempt takes over the claims of its events that the same claimant inserted under another
    attempt (which may still release them, ADR 0415)."""
    if not batch.size or not batch.attempt_id:
        return
    if is_postgres(conn):
        conn.execute(_PG_ADOPT, {"region": region_code, "attempt": batch.attempt_id, **_pg_columns(batch)})
        return
    c = activity_claims.c
    for claim in batch.claims():
        conn.execute(
            activity_claims.update()
            .where(
                c.day == claim.day,
                c.fingerprint == claim.fingerprint,
                c.region_code == region_code,
                c.partner_id == claim.partner_id,
                c.event_id == claim.event_id,
                c.attempt_id != batch.attempt_id,
            )
            .values(attempt_id=batch.attempt_id)
        )


def release(conn: Connection, region_code: str, claims: Release) -> int:
    """Deletes the named claims of the region still under the release's attempt; returns how many went."""
    if not claims.size:
        return 0
    if is_postgres(conn):
        params = {
            "region": region_code,
            "attempt": claims.attempt_id,
            "days": json.dumps(claims.days),
            "fingerprints": b"".join(claims.fingerprints),
        }
        return conn.execute(_PG_RELEASE, params).rowcount
    c = activity_claims.c
    keys = [(claims.distinct_days[day], fp) for day, fp in zip(claims.days, claims.fingerprints, strict=True)]
    statement = delete(activity_claims).where(
        tuple_(c.day, c.fingerprint).in_(keys), c.region_code == region_code, c.attempt_id == claims.attempt_id
    )
    return conn.execute(statement).rowcount


def record_attempt(conn: Connection, region_code: str, batch: ClaimColumns, now: datetime) -> None:
    """Keeps an attempt that claims ahead of recording, with its claims' keys, for the claimant's sweep (ADR 0416); a
    repeat of the same attempt's claim keeps the first."""
    insert = (postgresql.insert if is_postgres(conn) else sqlite.insert)(claim_attempts)
    row = {
        "region_code": region_code,
        "attempt_id": batch.attempt_id,
        "claimed_at": now,
        "fingerprints": b"".join(batch.fingerprints),
        "days": json.dumps(list(batch.days)),
        "recorded": False,
    }
    conn.execute(insert.on_conflict_do_nothing(), [row])


def drop_attempts_before(conn: Connection, claimed_before: datetime) -> int:
    """Forgets the attempts claimed before then (the sweep has long read past them); returns how many went."""
    return conn.execute(delete(claim_attempts).where(claim_attempts.c.claimed_at < claimed_before)).rowcount


def mark_recorded(conn: Connection, region_code: str, attempt_id: str) -> None:
    """The attempt has recorded its events (a recorded=true claim under it): the sweep no longer lists it."""
    c = claim_attempts.c
    statement = update(claim_attempts).where(
        c.region_code == region_code, c.attempt_id == attempt_id, c.recorded == false()
    )
    conn.execute(statement.values(recorded=True))


def list_attempts(
    conn: Connection, region_code: str, claimed_by: datetime, after: tuple[int, str] | None, limit: int
) -> list[AttemptClaims]:
    """The region's attempts not seen recorded and claimed by `claimed_by`, after the cursor, oldest first."""
    c = claim_attempts.c
    query = select(c.attempt_id, c.claimed_at, c.fingerprints, c.days).where(
        c.region_code == region_code, c.claimed_at <= claimed_by, c.recorded == false()
    )
    if after is not None:
        at = from_unix_us(after[0])
        query = query.where(or_(c.claimed_at > at, (c.claimed_at == at) & (c.attempt_id > after[1])))
    query = query.order_by(c.claimed_at, c.attempt_id).limit(limit)
    return [
        AttemptClaims(r.attempt_id, r.claimed_at, _split(bytes(r.fingerprints)), json.loads(r.days))
        for r in conn.execute(query)
    ]


def _split(fingerprints: bytes) -> list[bytes]:
    return [fingerprints[n : n + FINGERPRINT_BYTES] for n in range(0, len(fingerprints), FINGERPRINT_BYTES)]


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
