"""PostgreSQL statements of the per-batch path (events and caps): each takes the batch as ONE JSON document (new
events go by COPY instead).

One statement text per query whatever the batch size, so neither SQLAlchemy nor psycopg re-compiles or re-parses a
500-row VALUES list per batch; and json.dumps is C code, while psycopg binds Python lists element by element
(ListDumper: ~21% of ingest's CPU per batch when events went as 21 arrays, ~9% still for ids and cap keys).
Dates and times are written as ISO 8601 text, which PostgreSQL reads back into its own types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from service_kit.pg_copy import COPY_ESCAPES, copy_into

CapKey = tuple[str, str, date]

_EVENT_COLUMNS = (
    "partner_id, event_id, batch_id, account_number, behaviour, region_code, occurred_at, day, quantity_milli, tier, "
    "evidence_ref, rule_version_id, counted_before_milli, counted_milli, points, co2e_grams, reason, message, "
    "transfer_id, status, accepted_at, credit_batch_id"
)
# A PENDING event whose credit batch was POSTED reads CREDITED (docs/adr/0405-credit-batches-as-an-outbox.md).
# Joined from the id list, so both key columns reach the primary-key index whatever the statistics say.
_FIND_EVENTS = text(
    "SELECT "
    + ", ".join(f"e.{c}" for c in _EVENT_COLUMNS.replace(" status,", "").split(", "))
    + ", CASE WHEN e.status = 'PENDING' AND c.state = 'POSTED' THEN 'CREDITED' ELSE e.status END AS status "
    "FROM json_array_elements_text(CAST(:ids AS json)) AS ids(event_id) "
    "JOIN ingest_events AS e ON e.partner_id = :partner_id AND e.event_id = ids.event_id "
    "LEFT JOIN ingest_credit_batches AS c ON c.credit_batch_id = e.credit_batch_id"
)
_INSERT_EVENTS = text(
    f"INSERT INTO ingest_events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
    "FROM json_populate_recordset(NULL::ingest_events, CAST(:rows AS json)) "
    "ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING event_id"
)
_COPY_EVENTS = f"COPY ingest_events ({_EVENT_COLUMNS}) FROM STDIN"
_COPY_SPECIALS = ("\\", "\t", "\n", "\r")
_FREE_TEXT_COLUMNS = ("partner_id", "event_id", "batch_id", "tier", "evidence_ref", "rule_version_id", "message")
# Locks the counters that exist, in key order (two batches never deadlock); missing ones are inserted at the end.
_LOCK_CAPS = text(
    """
    SELECT c.account_number, c.behaviour, c.day, c.counted_milli
    FROM json_array_elements(CAST(:keys AS json)) AS k
    JOIN ingest_cap_counters AS c
      ON c.account_number = k->>0 AND c.behaviour = k->>1 AND c.day = CAST(k->>2 AS date)
    ORDER BY 1, 2, 3
    FOR UPDATE OF c
    """
)
# One write per counter: new ones inserted (a twin a concurrent batch inserted first shows in the count), locked
# ones updated. Replaces an upsert-to-lock followed by an update, which wrote every counter twice.
_WRITE_CAPS = text(
    """
    WITH v AS (
        SELECT k->>0 AS a, k->>1 AS b, CAST(k->>2 AS date) AS d, CAST(k->>3 AS bigint) AS n,
               CAST(k->>4 AS boolean) AS fresh
        FROM json_array_elements(CAST(:keys AS json)) AS k
    ), inserted AS (
        INSERT INTO ingest_cap_counters (account_number, behaviour, day, counted_milli)
        SELECT a, b, d, n FROM v WHERE fresh ORDER BY a, b, d
        ON CONFLICT (account_number, behaviour, day) DO NOTHING
        RETURNING 1
    ), updated AS (
        UPDATE ingest_cap_counters AS c SET counted_milli = v.n
        FROM v WHERE NOT v.fresh AND c.account_number = v.a AND c.behaviour = v.b AND c.day = v.d
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM inserted)
    """
)


def find_events(conn: Connection, partner_id: str, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(_FIND_EVENTS, {"partner_id": partner_id, "ids": json.dumps(list(event_ids))})
    return {row.event_id: dict(row._mapping) for row in rows}


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Inserts accepted events; returns the ids actually inserted (a concurrent twin makes one a no-op)."""
    iso = _IsoCache()
    document = json.dumps(
        [
            {
                **row,
                "occurred_at": iso(row["occurred_at"]),
                "day": iso(row["day"]),
                "accepted_at": iso(row["accepted_at"]),
            }
            for row in rows
        ]
    )
    return {row.event_id for row in conn.execute(_INSERT_EVENTS, {"rows": document})}


def copy_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Inserts events none of which can exist yet, by COPY (a third of the server's work of the INSERT above);
    an event that does exist fails the transaction with a unique violation."""
    iso = _IsoCache()
    # Free text needs COPY's escapes only if some value holds one of its special characters: checked once per batch
    # (escaping every value was the largest part of building the rows).
    free_text = "".join([r["event_id"] + r["tier"] + r["evidence_ref"] + r["message"] for r in rows])
    free_text += "".join({r["partner_id"] + r["batch_id"] + r["rule_version_id"] for r in rows})
    if any(special in free_text for special in _COPY_SPECIALS):
        rows = [{**r, **{c: r[c].translate(COPY_ESCAPES) for c in _FREE_TEXT_COLUMNS}} for r in rows]
    lines = [
        f"{r['partner_id']}\t{r['event_id']}\t{r['batch_id']}\t{r['account_number']}\t{r['behaviour']}\t"
        f"{r['region_code']}\t{iso(r['occurred_at'])}\t{iso(r['day'])}\t{r['quantity_milli']}\t{r['tier']}\t"
        f"{r['evidence_ref']}\t{r['rule_version_id']}\t{r['counted_before_milli']}\t{r['counted_milli']}\t"
        f"{r['points']}\t{r['co2e_grams']}\t{r['reason']}\t{r['message']}\t{r['transfer_id']}\t{r['status']}\t"
        f"{iso(r['accepted_at'])}\t{r['credit_batch_id']}\n"
        for r in rows
    ]
    with copy_into(conn, _COPY_EVENTS) as copy:
        copy.write("".join(lines))


class _IsoCache:
    """ISO 8601 text of dates and times: a batch repeats its days and its accepted_at, so each is formatted once."""

    def __init__(self) -> None:
        self._texts: dict[date | datetime, str] = {}

    def __call__(self, value: date | datetime) -> str:
        found = self._texts.get(value)
        if found is None:
            found = self._texts[value] = value.isoformat()
        return found


def lock_cap_counters(conn: Connection, keys_to_lock: Sequence[CapKey]) -> dict[CapKey, int]:
    iso = _IsoCache()
    keys = json.dumps([(a, b, iso(d)) for a, b, d in keys_to_lock])
    # Unpacked by position: a Row's attribute access costs several times more, for every counter of the batch.
    return {(a, b, d): n for a, b, d, n in conn.execute(_LOCK_CAPS, {"keys": keys})}


def write_cap_counters(conn: Connection, changes: Sequence[tuple[CapKey, int, bool]]) -> bool:
    """(key, new total, fresh); False when a fresh counter had been inserted by a concurrent batch."""
    iso = _IsoCache()
    keys = json.dumps([(a, b, iso(d), n, fresh) for (a, b, d), n, fresh in changes])
    inserted = conn.execute(_WRITE_CAPS, {"keys": keys}).scalar_one()
    return int(inserted) == sum(1 for _key, _n, fresh in changes if fresh)
