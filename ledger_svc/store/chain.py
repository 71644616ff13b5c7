"""The hash chain of blocks in the database: sealing committed batches into blocks, and verifying the chain."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Select, bindparam, func, insert, select, text, union_all, update

from ledger_svc.domain.journal import GENESIS_HASH, JournalEntry, Verification, block_hash, entries_hash, entry_of
from ledger_svc.store.tables import chain_head, journal_batches, journal_block_sums, transfers
from service_kit.accounts import SYSTEM_PREFIX

SEAL_BATCHES_PER_CALL = 2000
# Seals many batches at once: the new block numbers and hashes arrive as parallel arrays.
_SEAL_FROM_ARRAYS = text(
    "UPDATE journal_batches SET block_no = sealed.block_no, prev_hash = sealed.prev_hash,"
    " block_hash = sealed.block_hash"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:nos AS bigint[]), CAST(:prevs AS text[]), CAST(:hashes AS text[]))"
    " AS sealed(batch_id, block_no, prev_hash, block_hash)"
    " WHERE journal_batches.batch_id = sealed.batch_id"
)
# The hash and count of a batch whose transfers are all gone.
_NO_ENTRIES = entries_hash([])


def seal(conn: Connection, *, wait: bool = False) -> int:
    """Chains unsealed batches into blocks, in batch order. Returns how many were sealed: 0 if another transaction
    is sealing right now (it will pick these up, or the next call will), unless `wait`: then it waits for that
    transaction and seals what it left."""
    if conn.dialect.name == "postgresql" and not wait:
        # The background sealer never waits long for a lock: it gives up (the next seal picks the batches up)
        # rather than take part in a lock cycle, e.g. with DDL such as a schema being dropped.
        conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
    head = conn.execute(select(chain_head).where(chain_head.c.id == 1).with_for_update(skip_locked=not wait)).first()
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
    if conn.dialect.name == "postgresql":
        # One statement for every block of the call: a statement per block cost more than the hashing (ADR 0123).
        conn.execute(
            _SEAL_FROM_ARRAYS,
            {
                "ids": [row["id"] for row in rows],
                "nos": [row["no"] for row in rows],
                "prevs": [row["prev"] for row in rows],
                "hashes": [row["hash"] for row in rows],
            },
        )
    else:
        conn.execute(
            update(journal_batches)
            .where(journal_batches.c.batch_id == bindparam("id"))
            .values(block_no=bindparam("no"), prev_hash=bindparam("prev"), block_hash=bindparam("hash")),
            rows,
        )
    conn.execute(update(chain_head).where(chain_head.c.id == 1).values(last_block_no=block_no, last_hash=previous))
    sums = system_nets([batch.batch_id for batch in pending])
    conn.execute(insert(journal_block_sums).from_select(["batch_id", "account", "net_points"], sums))
    return len(rows)


def system_nets(batch_ids: list[int] | Select[tuple[int]]) -> Select[tuple[int, str, int]]:
    """The net change of each system account (credits +, debits -) in each of the batches, summed from their
    transfers (found by ix_transfers_batch). A user account's entries are left out: every transfer moves its
    points from one account to another, so users' net change is minus the system accounts' (ADR 0129)."""
    system = SYSTEM_PREFIX + "%"
    sides = union_all(
        select(
            transfers.c.batch_id, transfers.c.credit_account.label("account"), transfers.c.amount_points.label("points")
        ).where(transfers.c.batch_id.in_(batch_ids), transfers.c.credit_account.like(system)),
        select(transfers.c.batch_id, transfers.c.debit_account, -transfers.c.amount_points).where(
            transfers.c.batch_id.in_(batch_ids), transfers.c.debit_account.like(system)
        ),
    ).subquery("sides")
    net = func.sum(sides.c.points)
    return select(sides.c.batch_id, sides.c.account, net.label("net_points")).group_by(
        sides.c.batch_id, sides.c.account
    )


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
        digest, count = recomputed.pop(batch.batch_id, _NO_ENTRIES)
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
        bucket.append(entry_of(row))
    if batch_id is not None:
        yield batch_id, bucket
