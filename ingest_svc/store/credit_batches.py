"""The outbox of credits owed to the ledger: one row per recording transaction that owes any, listing its events
(docs/adr/0405-credit-batches-as-an-outbox.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from ingest_svc.domain.event_rows import PENDING
from ingest_svc.store.dialect import insert
from ingest_svc.store.tables import credit_batches

POSTED = "POSTED"  # a credit batch's state after PENDING
# An attempt id the sweep of claims left behind gave up (ADR 0416): a row with no events under the id the attempt's
# record transaction would insert, so that transaction, were it still running, fails on the key instead of committing
# events whose claims were released.
ABANDONED = "ABANDONED"


@dataclass(frozen=True)
class CreditBatch:
    credit_batch_id: str
    partner_id: str
    event_ids: list[str]


# Built once: a statement constructed per call costs SQLAlchemy its cache key every time, which single-event
# submissions pay per event.
_INSERT = credit_batches.insert()
_MARK_POSTED = (
    update(credit_batches)
    .where(credit_batches.c.credit_batch_id == bindparam("b"), credit_batches.c.state == PENDING)
    .values(state=POSTED, posted_at=bindparam("now"))
)


def insert_credit_batch(conn: Connection, batch: CreditBatch, now: datetime) -> None:
    row = {
        "credit_batch_id": batch.credit_batch_id,
        "partner_id": batch.partner_id,
        "event_ids": json.dumps(batch.event_ids),
        "state": PENDING,
        "created_at": now,
    }
    conn.execute(_INSERT, [row])


def mark_credit_batch_posted(conn: Connection, credit_batch_id: str, now: datetime) -> None:
    conn.execute(_MARK_POSTED, {"b": credit_batch_id, "now": now})


def pending_credit_batches(
    conn: Connection, limit: int, ids: Sequence[str] = (), created_by: datetime | None = None
) -> list[CreditBatch]:
    """The oldest credit batches still owed to the ledger (or, given `ids`, those of them still owed; given
    `created_by`, those recorded by then)."""
    query = select(credit_batches).where(credit_batches.c.state == PENDING)
    if ids:
        query = query.where(credit_batches.c.credit_batch_id.in_(list(ids)))
    if created_by is not None:
        query = query.where(credit_batches.c.created_at <= created_by)
    query = query.order_by(credit_batches.c.created_at).limit(limit)
    return [CreditBatch(r.credit_batch_id, r.partner_id, json.loads(r.event_ids)) for r in conn.execute(query)]


def abandon_attempts(conn: Connection, attempt_ids: Sequence[str], now: datetime) -> set[str]:
    """Of the attempts (credit batch ids), those that never recorded a credit batch, now marked ABANDONED so none of
    them can commit one any more; an attempt that did record (PENDING or POSTED) is left as it is."""
    if not attempt_ids:
        return set()
    rows = [
        {"credit_batch_id": a, "partner_id": "", "event_ids": "[]", "state": ABANDONED, "created_at": now}
        for a in attempt_ids
    ]
    conn.execute(insert(conn, credit_batches).on_conflict_do_nothing(), rows)
    c = credit_batches.c
    query = select(c.credit_batch_id).where(c.credit_batch_id.in_(list(attempt_ids)), c.state == ABANDONED)
    return {row.credit_batch_id for row in conn.execute(query)}


def is_abandoned(conn: Connection, credit_batch_id: str) -> bool:
    c = credit_batches.c
    query = select(c.state).where(c.credit_batch_id == credit_batch_id)
    return conn.execute(query).scalar_one_or_none() == ABANDONED
