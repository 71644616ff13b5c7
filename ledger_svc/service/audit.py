"""Audit use cases: VerifyJournal (the hash chain) and CheckConservation (every point accounted for), the latter
as the full audit or the incremental check (ADR 0129)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection

from ledger_svc.domain.conservation import Conservation, conservation
from ledger_svc.domain.journal import Verification
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import chain, reads
from ledger_svc.store.conservation import incremental_sums


def verify_journal(ctx: LedgerContext) -> Verification:
    """Seals what is not sealed yet, then recomputes every block from its entries and the chain from genesis."""
    ctx.seal_everything()
    with ctx.engine.connect() as conn:
        return chain.verify(conn)


def check_conservation(ctx: LedgerContext) -> Conservation:
    """The full audit: every lot, and every account against its journal entries. The database does the scanning, so
    the ledger's memory stays bounded however large the region (ADR 0118)."""
    with _one_snapshot(ctx) as conn:
        return conservation(reads.conservation_sums(conn))


def check_conservation_incremental(ctx: LedgerContext) -> Conservation:
    """Balances against the journal's per-block sums: reads the accounts but neither the lots nor the sealed
    journal, so it answers in a fraction of the full audit's time."""
    with _one_snapshot(ctx) as conn:
        return conservation(incremental_sums(conn))


@contextmanager
def _one_snapshot(ctx: LedgerContext) -> Iterator[Connection]:
    """A connection whose statements all see one snapshot on PostgreSQL, so that the sums of a check running beside
    writers agree with each other (SQLite's one writer gives a reader that anyway)."""
    with ctx.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn
