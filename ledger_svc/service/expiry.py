"""One batch of the expiry sweep on PostgreSQL, set-based (ADR 0102): the same transfers, balances and lot records
as the general path (`ops._expire_batch`), written with a handful of statements per batch instead of per lot."""

from __future__ import annotations

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


def expire_batch(
    conn: Connection, ctx: LedgerContext, cutoff_us: int, size: int, after: tuple[int, int]
) -> tuple[int, int, bool, tuple[int, int]]:
    """Empties up to `size` expired lots after `after` into system:expiry; returns (lots, points, whether the batch
    was full, the key to continue after). A new sweep starts from START_KEY: lots refilled behind it are found."""
    now_us = ctx.now_us()
    candidates = expiry_sets.expired_lot_candidates(conn, cutoff_us, size, after)
    if not candidates:
        return 0, 0, False, after
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
    last_id, _, last_expiry = candidates[-1]
    return len(swept), total, len(candidates) == size, (last_expiry, last_id)
