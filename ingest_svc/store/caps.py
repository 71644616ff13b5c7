"""Daily cap counters (account, behaviour, CST day -> quantity counted): locked for a batch's transaction and written
once each. On PostgreSQL pg.py's statements do it (docs/adr/0407-cap-counters-as-text-columns.md); the portable
ones here serve SQLite, whose transaction already holds the database's only write lock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, bindparam, select

from ingest_svc.domain.scoring import CapKey
from ingest_svc.store import pg
from ingest_svc.store.dialect import chunks, insert, is_postgres
from ingest_svc.store.tables import cap_counters

# (key, new total, whether this batch creates the counter)
CapChange = tuple[CapKey, int, bool]


def lock_cap_counters(conn: Connection, keys: Iterable[CapKey]) -> dict[CapKey, int]:
    """The counters that exist among `keys`, locked for this transaction (in key order, which pg.py sorts, so two
    batches never deadlock). A missing key has counted nothing yet; write_cap_counters creates it."""
    unique = list(set(keys))
    if not unique:
        return {}
    if is_postgres(conn):
        return pg.lock_cap_counters(conn, unique)
    return read_cap_counters_portably(conn, unique)


def read_cap_counters_portably(conn: Connection, keys: Sequence[CapKey]) -> dict[CapKey, int]:
    """The counters that exist among `keys`, read by account (on SQLite the transaction holds the write lock)."""
    counted: dict[CapKey, int] = {}
    accounts = sorted({key[0] for key in keys})
    query = select(cap_counters).where(cap_counters.c.account_number.in_(bindparam("accounts")))
    wanted = set(keys)
    for chunk in chunks(accounts):
        for row in conn.execute(query, {"accounts": list(chunk)}):
            key = (row.account_number, row.behaviour, row.day)
            if key in wanted:
                counted[key] = row.counted_milli
    return counted


def write_cap_counters(conn: Connection, locked: Mapping[CapKey, int], totals: Mapping[CapKey, int]) -> bool:
    """Writes the new totals once each: locked counters updated, missing ones created. False (write nothing more;
    roll back) when a concurrent batch created one of the missing counters first."""
    # Unsorted: pg.py inserts new counters in key order and updates only counters this transaction locked.
    changes = [(key, total, key not in locked) for key, total in totals.items() if total != locked.get(key)]
    if not changes:
        return True
    if is_postgres(conn):
        return pg.write_cap_counters(conn, changes)
    write_cap_counters_portably(conn, changes)
    return True


def write_cap_counters_portably(conn: Connection, changes: Sequence[CapChange]) -> None:
    """Each counter inserted or overwritten (on SQLite no concurrent batch can have created one meanwhile)."""
    statement = insert(conn, cap_counters)
    statement = statement.on_conflict_do_update(
        index_elements=[cap_counters.c.account_number, cap_counters.c.behaviour, cap_counters.c.day],
        set_={"counted_milli": statement.excluded.counted_milli},
    )
    rows = [{"account_number": a, "behaviour": b, "day": d, "counted_milli": n} for (a, b, d), n, _fresh in changes]
    conn.execute(statement, rows)
