"""One leader among a service's replicas by a lease row (ADR 0108): the shared statements and background loop behind
the ledger's scheduler and identity's hand-over job. A table of (name, holder, expires_at_us) rows, each inserted by
the service's migration; a replica takes or renews a named lease with one conditional UPDATE, so two racing for a
free lease cannot both win, and gives it up when it stops so another takes over at once. Portable SQL (PostgreSQL and
SQLite)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

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


class LeaseLost(Exception):
    """Another replica holds the lease now: this one stops working on the run and leaves it to the new leader (the
    run resumes where its batches committed)."""


class LeaderLoop:
    """The loop every replica runs in a background thread: `tick` (which takes or renews the lease and works while it
    leads) every `tick_s` seconds until stopped. A tick that fails is logged and tried again at the next one, since
    the database may be away for a while; a lost lease is normal (another replica took over) and only noted. On
    stop, `give_up` frees the lease so another replica takes over at once instead of after the lease runs out."""

    def __init__(
        self, name: str, tick: Callable[[], object], give_up: Callable[[], None], tick_s: float, log: logging.Logger
    ) -> None:
        self._name = name
        self._tick = tick
        self._give_up = give_up
        self._tick_s = tick_s
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """True once stop was asked for: a long run ends after its current batch."""
        return self._stop.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the loop after the current step and frees the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._give_up()
        except Exception as error:  # the lease then simply expires
            self._log.warning("could not give up the lease", extra={"loop": self._name, "error": str(error)})

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except LeaseLost:
                self._log.info("lease lost", extra={"loop": self._name})
            except Exception as error:  # the database may be away for a while: the next tick tries again
                self._log.warning("tick failed", extra={"loop": self._name, "error": str(error)})
            self._stop.wait(self._tick_s)
