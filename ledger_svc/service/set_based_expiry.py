"""One batch of the expiry sweep on PostgreSQL, set-based (ADR 0102): the same transfers, balances and lot records
as the general path (`ops._expire_batch`), written with a handful of statements per batch instead of per lot."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from sqlalchemy import Connection

from ledger_svc.domain.expiry import expire_fingerprint
from ledger_svc.domain.journal import EntryFields, entries_hash_of_fields
from ledger_svc.domain.names import SystemKind, TransferCode
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import accounts as account_store
from ledger_svc.store import credits as credit_store
from ledger_svc.store import expiry_sets

_EXPIRE = int(TransferCode.EXPIRE)


# Where a sweep starts: before every lot.
START_KEY = (-(2**63), -(2**63))


# Batches in flight at once: the database does most of the work (a batch is ~80% SQL), so while one batch waits on
# PostgreSQL the next one's Python runs, and two backends share the writes.
SWEEP_WORKERS = 2


def sweep(ctx: LedgerContext, cutoff_us: int, size: int, max_batches: int) -> tuple[int, int, bool]:
    """Sweeps in batches of `size` lots (at most `max_batches`, 0: no limit); returns (lots, points, done).

    This thread reads each batch's candidates in keyset order, after the previous batch's last (expiry, lot id), and
    hands the batch to a worker. Two batches sharing an account never run at the same time, so each account's
    transfers come in key order, as in a one-batch-at-a-time sweep. A new sweep starts from START_KEY: lots refilled
    behind it are found. Each batch is one transaction; a failed batch fails the sweep after those in flight end."""
    after = START_KEY
    batches = lots_total = points_total = 0
    done = False
    in_flight: list[tuple[Future[tuple[int, int]], set[str]]] = []

    def finish(entry: tuple[Future[tuple[int, int]], set[str]]) -> None:
        nonlocal lots_total, points_total
        in_flight.remove(entry)
        lots_done, points_done = entry[0].result()
        lots_total += lots_done
        points_total += points_done

    with ThreadPoolExecutor(SWEEP_WORKERS, thread_name_prefix="ledger-expiry") as pool:
        try:
            while not done and not (max_batches and batches >= max_batches):
                with ctx.engine.connect() as conn:
                    candidates = expiry_sets.expired_lot_candidates(conn, cutoff_us, size, after)
                done = len(candidates) < size
                if not candidates:
                    break
                accounts = {account for _, account, _ in candidates}
                for entry in [entry for entry in in_flight if entry[1] & accounts]:
                    finish(entry)
                while len(in_flight) >= SWEEP_WORKERS:
                    finish(in_flight[0])
                work = partial(_sweep_batch, ctx=ctx, candidates=candidates, cutoff_us=cutoff_us)
                in_flight.append((pool.submit(ctx.transaction, work), accounts))
                batches += 1
                last_id, _, last_expiry = candidates[-1]
                after = (last_expiry, last_id)
        finally:
            for future, _ in in_flight:
                future.exception()  # wait for every batch before reporting any failure
        while in_flight:
            finish(in_flight[0])
    return lots_total, points_total, done


def _sweep_batch(
    conn: Connection, ctx: LedgerContext, candidates: list[tuple[int, str, int]], cutoff_us: int
) -> tuple[int, int]:
    """Empties the candidate lots that (under their accounts' locks) still hold expired points into system:expiry;
    returns (lots, points)."""
    now_us = ctx.now_us()
    # Lock order as everywhere: accounts (sorted) first, then their lots, then system shards.
    locked = expiry_sets.lock_accounts(conn, [account for _, account, _ in candidates])
    swept = expiry_sets.empty_lots(conn, [lot_id for lot_id, _, _ in candidates], cutoff_us)
    # The general path's order (lot key, then id) gives each transfer the same balance-after.
    swept.sort(key=lambda lot: (lot[1], lot[2], lot[3], lot[0]))
    balances = {name: balance for name, (balance, _) in locked.items()}
    transfers: list[tuple[str, str, str, int, int, str, int, str, int, int, str, int]] = []
    lot_rows: list[tuple[str, str, int, int, int]] = []
    entries: list[EntryFields] = []
    total = 0
    for lot_id, account, expires_at_us, _earned_on, points, expired_before in swept:
        assert expires_at_us <= now_us, "only expired lots are swept"
        balance = balances[account] - points
        assert balance >= locked[account][1], "expiry took held points"
        balances[account] = balance
        total += points
        transfer_id = f"expire:{lot_id}:{expired_before}"
        reference = f"lot:{lot_id}"
        fingerprint = expire_fingerprint(transfer_id, points)
        transfers.append(
            (
                transfer_id,
                account,
                SystemKind.EXPIRY,
                points,
                _EXPIRE,
                reference,
                0,
                "",
                0,
                now_us,
                fingerprint,
                balance,
            )
        )
        lot_rows.append((transfer_id, "D", 0, lot_id, points))
        entries.append((transfer_id, account, SystemKind.EXPIRY, points, _EXPIRE, now_us, reference, 0, ""))
    if swept:
        digest, count = entries_hash_of_fields(entries)
        batch_id = credit_store.insert_batch(conn, digest, count, now_us)
        expiry_sets.copy_expiry_transfers(conn, transfers, batch_id)
        expiry_sets.copy_expiry_lots(conn, lot_rows)
        account_store.apply_system_deltas(conn, {SystemKind.EXPIRY: total})
    return len(swept), total
