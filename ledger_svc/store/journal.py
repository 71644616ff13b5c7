"""Writing postings to the journal, reading them back, and the hash chain of blocks (seal and verify)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from ledger_svc.domain.journal import GENESIS_HASH, JournalEntry, block_hash, entries_hash
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.posting import ItemResult, Posting, Status, credit_lots_implied, implied_credit_lot
from ledger_svc.store.accounts import chunks, lot_ids_by_key, lots_by_id
from ledger_svc.store.tables import chain_head, journal_batches, transfer_lots, transfers

SEAL_BATCHES_PER_CALL = 2000


def entry_of(posting: Posting) -> JournalEntry:
    return JournalEntry(
        posting.transfer_id,
        posting.debit_account,
        posting.credit_account,
        posting.amount_points,
        posting.code,
        posting.posted_at_us,
        posting.reference,
        posting.co2e_grams,
        posting.metadata_json,
    )


def insert_postings(conn: Connection, postings: list[Posting], now_us: int) -> None:
    """One journal batch (a future block) with its transfers and the lots each took or filled (an earn's one lot
    is implied by the transfer and not written, ADR 0106)."""
    if not postings:
        return
    digest, count = entries_hash(entry_of(posting) for posting in postings)
    batch_id = conn.execute(
        insert(journal_batches)
        .values(entries_count=count, entries_hash=digest, created_at_us=now_us)
        .returning(journal_batches.c.batch_id)
    ).scalar_one()
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
    lot_rows = [
        {
            "transfer_id": p.transfer_id,
            "side": side,
            "position": position,
            "lot_id": portion.lot_id,
            "amount_points": portion.amount_points,
        }
        for p in postings
        for side, portions in (("D", p.debit_lots), ("C", [] if credit_lots_implied(p) else p.credit_lots))
        for position, portion in enumerate(portions)
    ]
    if lot_rows:
        assert all(row["lot_id"] is not None for row in lot_rows), "every portion needs its lot id before insert"
        conn.execute(insert(transfer_lots), lot_rows)


def load_postings(conn: Connection, transfer_ids: Iterable[str]) -> dict[str, Posting]:
    """Posted transfers by id, with their lots (for replays, refunds and GetTransfer). An earn stored without lot
    records (ADR 0106) filled its implied lot: found by key, one look-up for all of them."""
    found: dict[str, Posting] = {}
    ids = sorted(set(transfer_ids))
    for part in chunks(ids):
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
    if not found:
        return found
    portion_rows: list[Any] = []
    for part in chunks(sorted(found)):
        portion_rows.extend(
            conn.execute(
                select(transfer_lots)
                .where(transfer_lots.c.transfer_id.in_(part))
                .order_by(transfer_lots.c.transfer_id, transfer_lots.c.side, transfer_lots.c.position)
            )
        )
    keys = lots_by_id(conn, (row.lot_id for row in portion_rows))
    for row in portion_rows:
        posting = found[row.transfer_id]
        portion = Portion(keys[row.lot_id], row.amount_points, row.lot_id)
        (posting.debit_lots if row.side == "D" else posting.credit_lots).append(portion)
    implied: dict[str, LotKey] = {}
    for posting in found.values():
        if not posting.credit_lots:
            key = implied_credit_lot(
                posting.code, posting.debit_account, posting.credit_account, posting.earned_at_us, posting.posted_at_us
            )
            if key is not None:
                implied[posting.transfer_id] = key
    if implied:
        lot_ids = lot_ids_by_key(conn, implied.values())
        for transfer_id, key in implied.items():
            assert key in lot_ids, f"transfer {transfer_id!r} filled lot {key}, which does not exist"
            posting = found[transfer_id]
            posting.credit_lots.append(Portion(key, posting.amount_points, lot_ids[key]))
    return found


def stored_results(postings: Mapping[str, Posting]) -> dict[str, tuple[str, ItemResult]]:
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


def seal(conn: Connection) -> int:
    """Chains unsealed batches into blocks, in batch order. Returns how many were sealed (0 if another
    transaction is sealing right now: it will pick these up, or the next call will)."""
    if conn.dialect.name == "postgresql":
        # The sealer never waits long for a lock: it gives up (the next seal picks the batches up) rather than
        # take part in a lock cycle, e.g. with DDL such as a schema being dropped.
        conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
    head = conn.execute(select(chain_head).where(chain_head.c.id == 1).with_for_update(skip_locked=True)).first()
    if head is None:
        return 0
    pending = conn.execute(
        select(journal_batches.c.batch_id, journal_batches.c.entries_hash, journal_batches.c.entries_count)
        .where(journal_batches.c.block_no.is_(None))
        .order_by(journal_batches.c.batch_id)
        .limit(SEAL_BATCHES_PER_CALL)
    ).all()
    if not pending:
        return 0
    block_no, previous = head.last_block_no, head.last_hash
    rows = []
    for batch in pending:
        block_no += 1
        current = block_hash(previous, block_no, batch.entries_hash, batch.entries_count)
        rows.append({"id": batch.batch_id, "no": block_no, "prev": previous, "hash": current})
        previous = current
    conn.execute(
        update(journal_batches)
        .where(journal_batches.c.batch_id == bindparam("id"))
        .values(block_no=bindparam("no"), prev_hash=bindparam("prev"), block_hash=bindparam("hash")),
        rows,
    )
    conn.execute(update(chain_head).where(chain_head.c.id == 1).values(last_block_no=block_no, last_hash=previous))
    return len(rows)


@dataclass(frozen=True)
class Verification:
    ok: bool
    blocks_checked: int
    entries_checked: int
    first_broken_block: int = 0
    problem: str = ""


def verify(conn: Connection) -> Verification:
    """Recomputes every block from its entries and the chain from genesis; stops at the first broken block."""
    previous = GENESIS_HASH
    blocks = 0
    entries = 0
    batch_rows = conn.execute(
        select(journal_batches).where(journal_batches.c.block_no.is_not(None)).order_by(journal_batches.c.block_no)
    )
    entry_stream = _entries_by_batch(conn)
    current_entries = next(entry_stream, None)
    recomputed: dict[int, tuple[str, int]] = {}
    for expected_no, batch in enumerate(batch_rows, start=1):
        if batch.block_no != expected_no:
            return Verification(False, blocks, entries, expected_no, f"block {expected_no} is missing")
        # Entries stream in batch_id order; blocks come in block order: look ahead as far as needed.
        while batch.batch_id not in recomputed and current_entries is not None:
            batch_id, batch_entries = current_entries
            recomputed[batch_id] = entries_hash(batch_entries)
            current_entries = next(entry_stream, None)
        digest, count = recomputed.pop(batch.batch_id, (entries_hash([])[0], 0))
        if batch.prev_hash != previous:
            return Verification(False, blocks, entries, batch.block_no, "previous-block hash does not match")
        if (digest, count) != (batch.entries_hash, batch.entries_count):
            return Verification(False, blocks, entries, batch.block_no, "entries do not match the block's hash")
        if block_hash(previous, batch.block_no, digest, count) != batch.block_hash:
            return Verification(False, blocks, entries, batch.block_no, "block hash does not match its content")
        previous = batch.block_hash
        blocks += 1
        entries += count
    return Verification(True, blocks, entries)


def _entries_by_batch(conn: Connection) -> Iterator[tuple[int, list[JournalEntry]]]:
    rows = conn.execution_options(yield_per=5000).execute(select(transfers).order_by(transfers.c.batch_id))
    batch_id: int | None = None
    bucket: list[JournalEntry] = []
    for row in rows:
        if row.batch_id != batch_id:
            if batch_id is not None:
                yield batch_id, bucket
            batch_id, bucket = row.batch_id, []
        bucket.append(
            JournalEntry(
                row.transfer_id,
                row.debit_account,
                row.credit_account,
                row.amount_points,
                row.code,
                row.posted_at_us,
                row.reference,
                row.co2e_grams,
                row.metadata_json,
            )
        )
    if batch_id is not None:
        yield batch_id, bucket


def fill_lot_ids(postings: list[Posting], lot_id_of: Callable[[LotKey], int | None]) -> None:
    for posting in postings:
        for portion in (*posting.debit_lots, *posting.credit_lots):
            if portion.lot_id is None:
                portion.lot_id = lot_id_of(portion.key)
