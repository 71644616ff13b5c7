"""Where the sweep of claims left by attempts that never recorded has read up to in the gateway's list of this
region's attempts (docs/adr/0416-orphan-claims-sweep.md): one row holding the list's page token."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from ingest_svc.store.dialect import insert
from ingest_svc.store.tables import claim_sweep

SWEEP = "orphan_claims"


def position(conn: Connection) -> str:
    """The page token to list from ("": the oldest attempt the gateway keeps)."""
    token = conn.execute(select(claim_sweep.c.page_token).where(claim_sweep.c.name == SWEEP)).scalar_one_or_none()
    return token or ""


def advance(conn: Connection, read_from: str, read_to: str) -> bool:
    """Moves the position from `read_from` to `read_to`; False when another replica moved it meanwhile (it swept the
    same page, or further: this one stops its pass and starts from there next time)."""
    if read_to == read_from:
        return True
    if not read_from:
        inserted = conn.execute(
            insert(conn, claim_sweep).on_conflict_do_nothing(), [{"name": SWEEP, "page_token": read_to}]
        )
        return inserted.rowcount == 1
    moved = conn.execute(
        update(claim_sweep)
        .where(claim_sweep.c.name == SWEEP, claim_sweep.c.page_token == read_from)
        .values(page_token=read_to)
    )
    return moved.rowcount == 1
