"""ExpirePoints: the sweep that moves what is left of expired lots to the expiry account, in batches.

On PostgreSQL the sweep is set-based (ADR 0102, `set_based_expiry`); elsewhere each batch locks the accounts, re-reads
the lots under the locks and posts one transfer per lot, here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import Connection

from ledger_svc.domain.expiry import ExpiryCandidate, ExpiryOutcome, expiry_posting, expiry_transfers
from ledger_svc.domain.time import day_of, start_of_day_us
from ledger_svc.service import set_based_expiry
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import accounts as account_store
from ledger_svc.store import expiry as expiry_store
from ledger_svc.store import journal
from service_kit.accounts import EXPIRY_ACCOUNT
from service_kit.errors import InvalidArgument

DEFAULT_EXPIRY_BATCH = 1000
MAX_EXPIRY_BATCH = 10_000
# Called with each batch's connection and outcome inside the batch's transaction (the scheduler counts progress).
OnBatch = Callable[[Connection, ExpiryOutcome], None]


def _no_progress(_conn: Connection, _outcome: ExpiryOutcome) -> None:
    pass


def expire_points(
    ctx: LedgerContext,
    as_of: date | None,
    batch_size: int,
    max_batches: int,
    on_batch: OnBatch = _no_progress,
    after: ExpiryCandidate | None = None,
) -> ExpiryOutcome:
    """Sweeps lots expired by the start of `as_of` (default today, CST) in batches of `batch_size`, one transaction
    each: resumable at any batch boundary, and idempotent per day (a swept lot is empty, so a rerun finds nothing).
    `on_batch` runs in each batch's transaction that expired something. `after` (a step's `resume_after`) lets the
    set-based sweep go on where the step before stopped; the general sweep always starts from the first lot."""
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
        outcome = set_based_expiry.sweep(ctx, cutoff_us, size, max_batches, on_batch, after)
    else:
        outcome = _sweep(ctx, cutoff_us, size, max_batches, on_batch)
    ctx.seal_journal()
    return outcome


def _sweep(ctx: LedgerContext, cutoff_us: int, size: int, max_batches: int, on_batch: OnBatch) -> ExpiryOutcome:
    total = ExpiryOutcome(lots_expired=0, points_expired=0, done=False)
    batches = 0
    while not total.done and not (max_batches and batches >= max_batches):
        total += ctx.transaction(lambda conn: _expire_batch(conn, ctx, cutoff_us, size, on_batch))
        batches += 1
    return total


def _expire_batch(conn: Connection, ctx: LedgerContext, cutoff_us: int, size: int, on_batch: OnBatch) -> ExpiryOutcome:
    now_us = ctx.now_us()
    candidates = expiry_store.expired_lot_candidates(conn, cutoff_us, size)
    if not candidates:
        return ExpiryOutcome(lots_expired=0, points_expired=0)
    # Lock order as everywhere: accounts (sorted) first, then their lots, then system shards.
    lots = expiry_store.expiring_lots(conn, candidates, cutoff_us)
    users = account_store.lock_users(conn, {lot.account for lot in lots}, now_us)
    lots = expiry_store.expiring_lots(conn, [lot.lot_id for lot in lots], cutoff_us)
    before = account_store.snapshot(users)
    transfers = expiry_transfers(lots, users, now_us)
    points = sum(lot.points for lot in lots)
    expiry_store.empty_lots(conn, lots)
    journal.insert_postings(conn, [expiry_posting(transfer, now_us) for transfer in transfers], now_us)
    account_store.write_users(conn, users, before)
    account_store.apply_system_deltas(conn, {EXPIRY_ACCOUNT: points})
    outcome = ExpiryOutcome(lots_expired=len(lots), points_expired=points, done=len(candidates) < size)
    if lots:
        on_batch(conn, outcome)
    return outcome
