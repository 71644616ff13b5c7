"""PostgreSQL statements of the per-batch path (events and caps): each takes the batch as ONE JSON document.

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
# Creates missing counters and locks all (in key order: two batches never deadlock) in one statement.
_LOCK_CAPS = text(
    """
    INSERT INTO ingest_cap_counters (account_number, behaviour, day, counted_milli)
    SELECT k->>0, k->>1, CAST(k->>2 AS date), 0 FROM json_array_elements(CAST(:keys AS json)) AS k
    ORDER BY 1, 2, 3
    ON CONFLICT (account_number, behaviour, day) DO UPDATE SET counted_milli = ingest_cap_counters.counted_milli
    RETURNING account_number, behaviour, day, counted_milli
    """
)
_SET_CAPS = text(
    """
    UPDATE ingest_cap_counters SET counted_milli = v.n
    FROM (SELECT k->>0 AS a, k->>1 AS b, CAST(k->>2 AS date) AS d, CAST(k->>3 AS bigint) AS n
          FROM json_array_elements(CAST(:keys AS json)) AS k) AS v
    WHERE ingest_cap_counters.account_number = v.a AND ingest_cap_counters.behaviour = v.b
      AND ingest_cap_counters.day = v.d
    """
)


def find_events(conn: Connection, partner_id: str, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(_FIND_EVENTS, {"partner_id": partner_id, "ids": json.dumps(list(event_ids))})
    return {row.event_id: dict(row._mapping) for row in rows}


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Inserts accepted events; returns the ids actually inserted (a concurrent twin makes one a no-op)."""
    iso: dict[date | datetime, str] = {}  # a batch repeats its days and its accepted_at: format each once

    def text_of(value: date | datetime) -> str:
        found = iso.get(value)
        if found is None:
            found = iso[value] = value.isoformat()
        return found

    document = json.dumps(
        [
            {
                **row,
                "occurred_at": text_of(row["occurred_at"]),
                "day": text_of(row["day"]),
                "accepted_at": text_of(row["accepted_at"]),
            }
            for row in rows
        ]
    )
    return {row.event_id for row in conn.execute(_INSERT_EVENTS, {"rows": document})}


def lock_cap_counters(conn: Connection, ordered: Sequence[CapKey]) -> dict[CapKey, int]:
    keys = json.dumps([(a, b, d.isoformat()) for a, b, d in ordered])
    return {(r.account_number, r.behaviour, r.day): r.counted_milli for r in conn.execute(_LOCK_CAPS, {"keys": keys})}


def set_cap_counters(conn: Connection, ordered: Sequence[tuple[CapKey, int]]) -> None:
    conn.execute(_SET_CAPS, {"keys": json.dumps([(a, b, d.isoformat(), n) for (a, b, d), n in ordered])})
