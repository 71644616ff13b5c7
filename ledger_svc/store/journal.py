"""The journal: writing postings as one batch (a future block of the hash chain), reading them back with their lots."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from ledger_svc.domain.implied_lots import (
    credit_lots_implied,
    debit_lots_implied,
    implied_credit_lot,
    implied_debit_lot_id,
)
from ledger_svc.domain.journal import entries_hash, entry_of
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.transfers import ItemResult, Posting, Status
from ledger_svc.store.accounts import lot_ids_by_key, lots_by_id
from ledger_svc.store.dialects import chunks
from ledger_svc.store.tables import transfer_lots, transfers

# Prepared once, the same text on both databases (a statement the credit path runs per batch).
_INSERT_BATCH = text(
    "INSERT INTO journal_batches (entries_count, entries_hash, created_at_us) VALUES (:count, :hash, :now) "
    "RETURNING batch_id"
)


def insert_batch(conn: Connection, entries_hash: str, entries_count: int, now_us: int) -> int:
    """The journal batch a transaction's transfers belong to; sealing later chains it into a block."""
    return int(conn.execute(_INSERT_BATCH, {"count": entries_count, "hash": entries_hash, "now": now_us}).scalar_one())


def insert_postings(conn: Connection, postings: list[Posting], now_us: int) -> None:
    """One journal batch with its transfers and the lots each took or filled (an earn's one lot, ADR 0106, and an
    expiry's, ADR 0130, are implied by the transfer and not written)."""
    if not postings:
        return
    batch_id = insert_batch(conn, *entries_hash(entry_of(posting) for posting in postings), now_us)
    conn.execute(
        insert(transfers),
        [
            {
                "transfer_id": p.transfer_id,
                "batch_id": batch_id,
                "debit_account": p.debit_account,
                "credit_account": p.credit_account,
                "amount_points": p.amount_points,
                "code": p.code,
                "reference": p.reference,
                "co2e_grams": p.co2e_grams,
                "metadata_json": p.metadata_json,
                "earned_at_us": p.earned_at_us,
                "posted_at_us": p.posted_at_us,
                "fingerprint": p.fingerprint,
                "debit_balance_after": p.debit_balance_after,
                "credit_balance_after": p.credit_balance_after,
                "refund_of": p.refund_of,
            }
            for p in postings
        ],
    )
    lot_rows = [row for posting in postings for row in _lot_records(posting)]
    if lot_rows:
        assert all(row["lot_id"] is not None for row in lot_rows), "every portion needs its lot id before insert"
        conn.execute(insert(transfer_lots), lot_rows)


def _lot_records(posting: Posting) -> list[dict[str, Any]]:
    """The rows of transfer_lots for one posting: side D the lots it took, side C those it filled, unless implied."""
    debited = [] if debit_lots_implied(posting) else posting.debit_lots
    credited = [] if credit_lots_implied(posting) else posting.credit_lots
    return [
        {
            "transfer_id": posting.transfer_id,
            "side": side,
            "position": position,
            "lot_id": portion.lot_id,
            "amount_points": portion.amount_points,
        }
        for side, portions in (("D", debited), ("C", credited))
        for position, portion in enumerate(portions)
    ]


def load_postings(conn: Connection, transfer_ids: Iterable[str]) -> dict[str, Posting]:
    """Posted transfers by id, with their lots (for replays, refunds and GetTransfer)."""
    found: dict[str, Posting] = {}
    for part in chunks(sorted(set(transfer_ids))):
        for row in conn.execute(select(transfers).where(transfers.c.transfer_id.in_(part))):
            found[row.transfer_id] = Posting(
                transfer_id=row.transfer_id,
                debit_account=row.debit_account,
                credit_account=row.credit_account,
                amount_points=row.amount_points,
                code=row.code,
                posted_at_us=row.posted_at_us,
                fingerprint=row.fingerprint,
                reference=row.reference,
                co2e_grams=row.co2e_grams,
                metadata_json=row.metadata_json,
                earned_at_us=row.earned_at_us,
                debit_balance_after=row.debit_balance_after,
                credit_balance_after=row.credit_balance_after,
                refund_of=row.refund_of,
            )
    if found:
        _add_recorded_lots(conn, found)
        _add_implied_lots(conn, found)
    return found


def _add_recorded_lots(conn: Connection, postings: Mapping[str, Posting]) -> None:
    """The portions transfer_lots records, in side and position order."""
    rows: list[Any] = []
    for part in chunks(sorted(postings)):
        rows.extend(
            conn.execute(
                select(transfer_lots)
                .where(transfer_lots.c.transfer_id.in_(part))
                .order_by(transfer_lots.c.transfer_id, transfer_lots.c.side, transfer_lots.c.position)
            )
        )
    keys = lots_by_id(conn, (row.lot_id for row in rows))
    for row in rows:
        posting = postings[row.transfer_id]
        portion = Portion(keys[row.lot_id], row.amount_points, row.lot_id)
        (posting.debit_lots if row.side == "D" else posting.credit_lots).append(portion)


def _add_implied_lots(conn: Connection, postings: Mapping[str, Posting]) -> None:
    """An earn stored without lot records (ADR 0106) filled its implied lot: found by key, one look-up for all. An
    expiry stored without (ADR 0130) emptied the lot its reference names: found by id, one look-up for all."""
    _add_implied_debit_lots(conn, postings)
    implied: dict[str, LotKey] = {}
    for posting in postings.values():
        if not posting.credit_lots:
            key = implied_credit_lot(
                posting.code, posting.debit_account, posting.credit_account, posting.earned_at_us, posting.posted_at_us
            )
            if key is not None:
                implied[posting.transfer_id] = key
    if not implied:
        return
    lot_ids = lot_ids_by_key(conn, implied.values())
    for transfer_id, key in implied.items():
        assert key in lot_ids, f"transfer {transfer_id!r} filled lot {key}, which does not exist"
        posting = postings[transfer_id]
        posting.credit_lots.append(Portion(key, posting.amount_points, lot_ids[key]))


def _add_implied_debit_lots(conn: Connection, postings: Mapping[str, Posting]) -> None:
    implied: dict[str, int] = {}
    for posting in postings.values():
        if not posting.debit_lots:
            lot_id = implied_debit_lot_id(posting.code, posting.credit_account, posting.reference)
            if lot_id is not None:
                implied[posting.transfer_id] = lot_id
    if not implied:
        return
    keys = lots_by_id(conn, implied.values())
    for transfer_id, lot_id in implied.items():
        assert lot_id in keys, f"transfer {transfer_id!r} emptied lot {lot_id}, which does not exist"
        posting = postings[transfer_id]
        posting.debit_lots.append(Portion(keys[lot_id], posting.amount_points, lot_id))


def stored_results(postings: Mapping[str, Posting]) -> dict[str, tuple[str, ItemResult]]:
    """Posted transfers as the general path's `stored` argument: (fingerprint, first result) by id."""
    return {
        transfer_id: (posting.fingerprint, ItemResult(transfer_id, Status.POSTED, posting=posting))
        for transfer_id, posting in postings.items()
    }


def refunded_by_lot(conn: Connection, original_transfer_id: str) -> tuple[int, dict[int, int]]:
    """Points already refunded of a transfer: total and per lot (the refunds' credit portions)."""
    refund_ids = list(
        conn.execute(select(transfers.c.transfer_id).where(transfers.c.refund_of == original_transfer_id)).scalars()
    )
    if not refund_ids:
        return 0, {}
    per_lot: dict[int, int] = {}
    for row in conn.execute(
        select(transfer_lots.c.lot_id, func.sum(transfer_lots.c.amount_points).label("points"))
        .where(transfer_lots.c.transfer_id.in_(refund_ids), transfer_lots.c.side == "C")
        .group_by(transfer_lots.c.lot_id)
    ):
        per_lot[row.lot_id] = int(row.points)
    return sum(per_lot.values()), per_lot


def fill_lot_ids(postings: list[Posting], lot_id_of: Callable[[LotKey], int | None]) -> None:
    """Gives portions of lots created in this transaction the ids the store assigned."""
    for posting in postings:
        for portion in (*posting.debit_lots, *posting.credit_lots):
            if portion.lot_id is None:
                portion.lot_id = lot_id_of(portion.key)
