"""One leader among a service's replicas by a lease row (ADR 0108): the shared statements behind the ledger's
scheduler and identity's hand-over job. A table of (name, holder, expires_at_us) rows, each inserted by the service's
migration; a replica takes or renews a named lease with one conditional UPDATE, so two racing for a free lease cannot
both win, and gives it up when it stops so another takes over at once. Portable SQL (PostgreSQL and SQLite)."""

from __future__ import annotations

import os
import socket
import uuid

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, select, update


def lease_table(metadata: MetaData, name: str = "job_leases") -> Table:
    """The lease table's shape, for a service's own metadata (its migration creates it and inserts the rows)."""
    return Table(
        name,
        metadata,
        Column("name", String(32), primary_key=True),
        Column("holder", String(128), nullable=False),
        Column("expires_at_us", BigInteger, nullable=False),
    )


def replica_name() -> str:
    """This process among the replicas: host, pid and a random suffix (a restarted pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def take_lease(conn: Connection, table: Table, name: str, holder: str, now_us: int, until_us: int) -> bool:
    """Takes or renews lease `name` for `holder` until `until_us`: granted when it is free (expired) or already the
    holder's."""
    result = conn.execute(
        update(table)
        .where(table.c.name == name)
        .where((table.c.holder == holder) | (table.c.expires_at_us <= now_us))
        .values(holder=holder, expires_at_us=until_us)
    )
    return result.rowcount == 1


def give_up_lease(conn: Connection, table: Table, name: str, holder: str) -> None:
    """Frees the lease at once if `holder` has it (a replica stopping)."""
    conn.execute(update(table).where(table.c.name == name, table.c.holder == holder).values(expires_at_us=0))


def lease_holder(conn: Connection, table: Table, name: str) -> tuple[str, int]:
    """The lease's holder and expiry (µs since the epoch): the leader while the expiry has not passed."""
    row = conn.execute(select(table.c.holder, table.c.expires_at_us).where(table.c.name == name)).one()
    return str(row.holder), int(row.expires_at_us)
