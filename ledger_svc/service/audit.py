"""Operations: the expiry sweep, journal verification, the conservation check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from ledger_svc.domain.expiry import expire_lots
from ledger_svc.domain.names import SystemKind
from ledger_svc.domain.time import day_of, start_of_day_us
from ledger_svc.service import expiry as set_based
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import accounts as account_store
from ledger_svc.store import expiry as expiry_store
from ledger_svc.store import journal, reads
from service_kit.errors import InvalidArgument

DEFAULT_EXPIRY_BATCH = 1000
MAX_EXPIRY_BATCH = 10_000


@dataclass(frozen=True)
class ExpiryOutcome:
    lots_expired: int
    points_expired: int
    done: bool


def expire_points(ctx: LedgerContext, as_of: date | None, batch_size: int, max_batches: int) -> ExpiryOutcome:
    """Sweeps expired lots in batches of `batch_size`, one transaction each: resumable at any batch boundary,
    and idempotent per day (a swept lot is empty, so a rerun finds nothing)."""
    today = day_of(ctx.now_us())
    day = as_of or today
    if day > today:
        raise InvalidArgument("as_of", f"must not be after today ({today.isoformat()})")
    if not 0 <= batch_size <= MAX_EXPIRY_BATCH:
        raise InvalidArgument(
            "batch_size", f"must be between 0 (default {DEFAULT_EXPIRY_BATCH}) and {MAX_EXPIRY_BATCH}"
        )
    if max_batches < 0:
        raise InvalidArgument("max_batches", "must not be negative (0: until done)")
    size = batch_size or DEFAULT_EXPIRY_BATCH
    cutoff_us = start_of_day_us(day)
    if ctx.set_based_expiry and ctx.engine.dialect.name == "postgresql":
        lots_total, points_total, done = set_based.sweep(ctx, cutoff_us, size, max_batches)
        ctx.seal_journal()
        return ExpiryOutcome(lots_total, points_total, done)
    lots_total = points_total = batches = 0
    while True:
        lots_done, points_done, full = ctx.transaction(lambda conn: _expire_batch(conn, ctx, cutoff_us, size))
        lots_total += lots_done
        points_total += points_done
        batches += 1
        if not full:
            break
        if max_batches and batches >= max_batches:
            ctx.seal_journal()
            return ExpiryOutcome(lots_total, points_total, done=False)
    ctx.seal_journal()
    return ExpiryOutcome(lots_total, points_total, done=True)


def _expire_batch(conn: Connection, ctx: LedgerContext, cutoff_us: int, size: int) -> tuple[int, int, bool]:
    now_us = ctx.now_us()
    candidates = expiry_store.expired_lot_candidates(conn, cutoff_us, size)
    if not candidates:
        return 0, 0, False
    # Lock order as everywhere: accounts (sorted) first, then their lots, then system shards.
    lots = expiry_store.expiring_lots(conn, candidates, cutoff_us)
    users = account_store.lock_users(conn, {lot.key.account for lot in lots}, now_us)
    lots = expiry_store.expiring_lots(conn, [lot.lot_id for lot in lots], cutoff_us)
    before = account_store.snapshot(users)
    postings = expire_lots(users, lots, now_us)
    points = sum(lot.remaining_points for lot in lots)
    expiry_store.empty_lots(conn, lots)
    journal.insert_postings(conn, postings, now_us)
    account_store.write_users(conn, users, before)
    account_store.apply_system_deltas(conn, {SystemKind.EXPIRY: points})
    return len(lots), points, len(candidates) == size


def verify_journal(ctx: LedgerContext) -> journal.Verification:
    while ctx.seal_journal():
        pass
    with ctx.engine.connect() as conn:
        return journal.verify(conn)


@dataclass(frozen=True)
class Conservation:
    balanced: bool
    issued_points: int
    outstanding_points: int
    redeemed_points: int
    expired_points: int
    donated_points: int
    net_transferred_points: int
    adjusted_points: int
    sum_of_all_balances_points: int
    problems: tuple[str, ...]


def check_conservation(ctx: LedgerContext) -> Conservation:
    with ctx.engine.connect() as conn:
        sums = reads.conservation_sums(conn)
    system = sums.system_balances
    issued = -system.get(SystemKind.ISSUANCE, 0)
    parts = {
        "redeemed": system.get(SystemKind.REDEMPTION, 0),
        "expired": system.get(SystemKind.EXPIRY, 0),
        "donated": system.get(SystemKind.DONATION, 0),
        "net_transferred": system.get(SystemKind.CLEARING, 0),
        "adjusted": system.get(SystemKind.ADJUSTMENT, 0),
    }
    total = sums.user_balances_points + sum(system.values())
    problems = []
    if total != 0:
        problems.append(f"balances sum to {total}, not 0")
    if issued != sums.user_balances_points + sum(parts.values()):
        problems.append("issued differs from outstanding + redeemed + expired + donated + net transferred + adjusted")
    if sums.lot_points + sums.pending_hold_lot_points != sums.user_balances_points:
        problems.append("user balances differ from points in lots plus pending holds")
    if sums.pending_hold_points != sums.pending_hold_lot_points or sums.user_held_points != sums.pending_hold_points:
        problems.append("held points differ from pending holds")
    if sums.journal_mismatches:
        problems.append(f"{sums.journal_mismatches} account balances differ from their journal entries")
    return Conservation(
        balanced=not problems,
        issued_points=issued,
        outstanding_points=sums.user_balances_points,
        redeemed_points=parts["redeemed"],
        expired_points=parts["expired"],
        donated_points=parts["donated"],
        net_transferred_points=parts["net_transferred"],
        adjusted_points=parts["adjusted"],
        sum_of_all_balances_points=total,
        problems=tuple(problems),
    )
