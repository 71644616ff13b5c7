"""PostgreSQL-only statements of the per-batch path, each the fast twin of a portable one in events.py or caps.py
(tests hold them equal): new events go by COPY, event ids and rows as one JSON document, cap counters as
comma-joined text columns.

One statement text per query whatever the batch size, so neither SQLAlchemy nor psycopg compiles or parses a
500-row VALUES list per batch; and the batch travels as a few text parameters that C code builds (json.dumps,
str.join), where psycopg would bind a Python list element by element. Dates and times are written as ISO 8601 text,
which PostgreSQL reads back into its own types.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from ingest_svc.domain.event_rows import EventRow
from ingest_svc.domain.scoring import CapKey
from service_kit.pg_copy import COPY_ESCAPES, copy_into

_EVENT_COLUMNS = ", ".join(EventRow._fields)
# A PENDING event whose credit batch was POSTED reads CREDITED (docs/adr/0405-credit-batches-as-an-outbox.md).
_READ_STATUS = "CASE WHEN e.status = 'PENDING' AND c.state = 'POSTED' THEN 'CREDITED' ELSE e.status END AS status"
# Joined from the id list, so both key columns reach the primary-key index whatever the statistics say.
_FIND_EVENTS = text(
    "SELECT "
    + ", ".join(_READ_STATUS if c == "status" else f"e.{c}" for c in EventRow._fields)
    + " FROM json_array_elements_text(CAST(:ids AS json)) AS ids(event_id) "
    "JOIN ingest_events AS e ON e.partner_id = :partner_id AND e.event_id = ids.event_id "
    "LEFT JOIN ingest_credit_batches AS c ON c.credit_batch_id = e.credit_batch_id"
)
_INSERT_EVENTS = text(
    f"INSERT INTO ingest_events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
    "FROM json_populate_recordset(NULL::ingest_events, CAST(:rows AS json)) "
    "ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING event_id"
)
_COPY_EVENTS = f"COPY ingest_events ({_EVENT_COLUMNS}) FROM STDIN"
_FREE_TEXT_COLUMNS = ("partner_id", "event_id", "batch_id", "tier", "evidence_ref", "rule_version_id", "message")
# Cap counters travel as comma-joined text columns, unnested by the statements: no JSON to parse per row and per
# probe (docs/adr/0407-cap-counters-as-text-columns.md). Account numbers, behaviour codes, ISO days and totals hold
# no comma (_column checks the text ones).
# Locks the counters that exist, in the order of the keys (lock_cap_counters sorts them, so two batches never
# deadlock). The LATERAL subquery probes the key index once per key whatever the planner estimates; a join with
# exact row counts became a hash join over the whole table.
_LOCK_CAPS = text(
    """
    SELECT k.a, k.b, k.d, c.counted_milli
    FROM unnest(string_to_array(:accounts, ','), string_to_array(:behaviours, ','),
                CAST(string_to_array(:days, ',') AS date[])) AS k(a, b, d)
    CROSS JOIN LATERAL (
        SELECT counted_milli FROM ingest_cap_counters
        WHERE account_number = k.a AND behaviour = k.b AND day = k.d
        FOR UPDATE
    ) AS c
    """
)
# One write per counter. New ones are inserted in key order (a twin a concurrent batch inserted first shows in the
# count); locked ones are overwritten by ON CONFLICT, found through the key index with no join, so no plan to get
# wrong (an UPDATE joined to the same columns took a hash join over the whole table on mid-sized tables).
_WRITE_CAPS = text(
    """
    WITH inserted AS (
        INSERT INTO ingest_cap_counters (account_number, behaviour, day, counted_milli)
        SELECT * FROM unnest(string_to_array(:fresh_accounts, ','), string_to_array(:fresh_behaviours, ','),
                             CAST(string_to_array(:fresh_days, ',') AS date[]),
                             CAST(string_to_array(:fresh_totals, ',') AS bigint[]))
        ON CONFLICT (account_number, behaviour, day) DO NOTHING
        RETURNING 1
    ), updated AS (
        INSERT INTO ingest_cap_counters (account_number, behaviour, day, counted_milli)
        SELECT * FROM unnest(string_to_array(:locked_accounts, ','), string_to_array(:locked_behaviours, ','),
                             CAST(string_to_array(:locked_days, ',') AS date[]),
                             CAST(string_to_array(:locked_totals, ',') AS bigint[]))
        ON CONFLICT (account_number, behaviour, day) DO UPDATE SET counted_milli = excluded.counted_milli
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM inserted)
    """
)


def find_events(conn: Connection, partner_id: str, event_ids: Sequence[str]) -> list[Row[Any]]:
    """The stored events among `event_ids`, columns in EventRow's order."""
    return list(conn.execute(_FIND_EVENTS, {"partner_id": partner_id, "ids": json.dumps(list(event_ids))}))


def insert_events(conn: Connection, rows: Sequence[EventRow]) -> set[str]:
    """Inserts accepted events; returns the ids actually inserted (a concurrent twin makes one a no-op)."""
    iso = _IsoCache()
    document = json.dumps(
        [
            {
                **row._asdict(),
                "occurred_at": iso[row.occurred_at],
                "day": iso[row.day],
                "accepted_at": iso[row.accepted_at],
            }
            for row in rows
        ]
    )
    return {row.event_id for row in conn.execute(_INSERT_EVENTS, {"rows": document})}


def copy_events(conn: Connection, rows: Sequence[EventRow]) -> None:
    """Inserts events none of which can exist yet, by COPY (less of the server's work than the INSERT above); an
    event that does exist fails the transaction with a unique violation."""
    document = _copy_text(rows)
    # Free text needs COPY's escapes only if some value holds one of its special characters. Checked once over the
    # finished text, in C: it holds exactly 21 tabs and one line break per row, and no backslash or carriage return,
    # unless a value brought one (then the free-text columns are escaped and the text built again).
    count = len(rows)
    if document.count("\t") != 21 * count or document.count("\n") != count or "\\" in document or "\r" in document:
        document = _copy_text([_escaped(row) for row in rows])
    with copy_into(conn, _COPY_EVENTS) as copy:
        copy.write(document)


def _copy_text(rows: Sequence[EventRow]) -> str:
    """COPY's text format of event rows: one line per row, the values unpacked by position in EventRow's field order
    (a test compares the text with one built column by column)."""
    iso = _IsoCache()
    return "".join(
        [
            f"{partner_id}\t{event_id}\t{batch_id}\t{account_number}\t{behaviour}\t{region_code}\t"
            f"{occurred_at.isoformat()}\t{iso[day]}\t{quantity_milli}\t{tier}\t{evidence_ref}\t{rule_version_id}\t"
            f"{counted_before_milli}\t{counted_milli}\t{points}\t{co2e_grams}\t{reason}\t{message}\t{transfer_id}\t"
            f"{status}\t{iso[accepted_at]}\t{credit_batch_id}\n"
            for (
                partner_id,
                event_id,
                batch_id,
                account_number,
                behaviour,
                region_code,
                occurred_at,  # distinct per event in real feeds: formatted directly, not through the cache
                day,
                quantity_milli,
                tier,
                evidence_ref,
                rule_version_id,
                counted_before_milli,
                counted_milli,
                points,
                co2e_grams,
                reason,
                message,
                transfer_id,
                status,
                accepted_at,
                credit_batch_id,
            ) in rows
        ]
    )


def _escaped(row: EventRow) -> EventRow:
    """The row with COPY's escapes applied to its free-text columns."""
    return row._replace(**{c: getattr(row, c).translate(COPY_ESCAPES) for c in _FREE_TEXT_COLUMNS})


class _IsoCache(dict[date | datetime, str]):
    """ISO 8601 text of dates and times: a batch repeats its days and its accepted_at, so each is formatted once.
    A dict formatting what it misses: `iso[value]` is a plain look-up in C, with no Python call per value."""

    def __missing__(self, value: date | datetime) -> str:
        text_ = self[value] = value.isoformat()
        return text_


def lock_cap_counters(conn: Connection, keys_to_lock: Sequence[CapKey]) -> dict[CapKey, int]:
    # Key order (Python's, the same in every process) is the lock order: the statement locks in input order.
    params = _cap_columns(sorted(keys_to_lock), "")
    # Unpacked by position, cheaper than a Row's attribute access, for every counter of the batch.
    return {(a, b, d): n for a, b, d, n in conn.execute(_LOCK_CAPS, params)}


def write_cap_counters(conn: Connection, changes: Sequence[tuple[CapKey, int, bool]]) -> bool:
    """(key, new total, fresh); False when a fresh counter had been inserted by a concurrent batch."""
    fresh = sorted((key, n) for key, n, is_fresh in changes if is_fresh)  # created in key order, like the locks
    locked = [(key, n) for key, n, is_fresh in changes if not is_fresh]
    params = {
        **_cap_columns([key for key, _n in fresh], "fresh_"),
        "fresh_totals": ",".join([str(n) for _key, n in fresh]),
        **_cap_columns([key for key, _n in locked], "locked_"),
        "locked_totals": ",".join([str(n) for _key, n in locked]),
    }
    inserted = conn.execute(_WRITE_CAPS, params).scalar_one()
    return int(inserted) == len(fresh)


def _cap_columns(keys: Sequence[CapKey], prefix: str) -> dict[str, str]:
    iso = _IsoCache()
    return {
        f"{prefix}accounts": _column([a for a, _b, _d in keys]),
        f"{prefix}behaviours": _column([b for _a, b, _d in keys]),
        f"{prefix}days": ",".join([iso[d] for _a, _b, d in keys]),
    }


def _column(values: list[str]) -> str:
    """Comma-joined values for string_to_array. Account numbers and behaviour codes hold no comma; one that did
    would shift every later value, so it is refused (one count over the joined text, in C)."""
    joined = ",".join(values)
    if joined.count(",") != max(len(values) - 1, 0):
        raise ValueError("a cap counter key holds a comma")
    return joined
