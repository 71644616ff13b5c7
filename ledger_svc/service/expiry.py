"""ExpirePoints: the sweep that moves what is left of expired lots to the expiry account, in batches.

On PostgreSQL the sweep is set-based (ADR 0102, `set_based_expiry`); elsewhere each batch locks the accounts, re-reads
the lots under the locks and posts one transfer per lot, here. Either way a run visits first the lots refilled since
they were emptied (expiry_requeue), then the lots after the watermark, in (expiry, id) order (ADR 0133).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial

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
    `on_batch` runs in each batch's transaction that expired something. `after` (a step's `resume_after`) goes on
    where the step before stopped; None starts a run: the lots queued again, then the lots after the watermark."""
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
        outcome = _sweep(ctx, cutoff_us, size, max_batches, on_batch, after)
    ctx.seal_journal()
    return outcome


def _sweep(
    ctx: LedgerContext, cutoff_us: int, size: int, max_batches: int, on_batch: OnBatch, after: ExpiryCandidate | None
) -> ExpiryOutcome:
    total = ExpiryOutcome(lots_expired=0, points_expired=0, done=False)
    batches = 0
    requeued = after is None
    if after is None:
        after = ctx.transaction(lambda conn: expiry_store.run_start(conn, cutoff_us))
    while not total.done and not (max_batches and batches >= max_batches):
        if requeued:
            # An empty queue (the usual case) costs no batch.
            with ctx.engine.connect() as conn:
                requeued = bool(expiry_store.requeued_candidates(conn, cutoff_us, 1))
        work = partial(
            _expire_batch, ctx=ctx, cutoff_us=cutoff_us, size=size, on_batch=on_batch, after=after, requeued=requeued
        )
        outcome = ctx.transaction(work)
        batches += 1
        if requeued:
            # The queue drained: the range after the watermark is next, in this step if batches are left.
            requeued = not outcome.done
            outcome = ExpiryOutcome(outcome.lots_expired, outcome.points_expired, done=False)
        else:
            after = outcome.resume_after or after
        total += outcome
    return ExpiryOutcome(
        total.lots_expired, total.points_expired, total.done, None if total.done or requeued else after
    )


def _expire_batch(
    conn: Connection,
    ctx: LedgerContext,
    cutoff_us: int,
    size: int,
    on_batch: OnBatch,
    after: ExpiryCandidate | None,
    requeued: bool,
) -> ExpiryOutcome:
    """One batch of the queued lots (`requeued`) or of the lots after `after`: the candidates' accounts locked, the
    lots re-read under the locks and emptied; then the queue rows taken out, or the watermark moved past them."""
    now_us = ctx.now_us()
    if requeued:
        candidates = expiry_store.requeued_candidates(conn, cutoff_us, size)
    else:
        candidates = expiry_store.expired_lot_candidates(conn, cutoff_us, size, after)
    done = len(candidates) < size
    if not requeued and done:
        # Every lot that expired by the cutoff is empty now, or queued again if refilled after this commits.
        expiry_store.advance_watermark(conn, expiry_store.swept_through(cutoff_us))
    if not candidates:
        return ExpiryOutcome(lots_expired=0, points_expired=0, resume_after=after)
    # Lock order as everywhere: accounts (sorted) first, then their lots, then system shards.
    users = account_store.lock_users(conn, {candidate.account for candidate in candidates}, now_us)
    lots = expiry_store.expiring_lots(conn, [candidate.lot_id for candidate in candidates], cutoff_us)
    before = account_store.snapshot(users)
    transfers = expiry_transfers(lots, users, now_us)
    points = sum(lot.points for lot in lots)
    expiry_store.empty_lots(conn, lots)
    journal.insert_postings(conn, [expiry_posting(transfer, now_us) for transfer in transfers], now_us)
    account_store.write_users(conn, users, before)
    account_store.apply_system_deltas(conn, {EXPIRY_ACCOUNT: points})
    # Every candidate is empty now, under its account's lock: a refill after this commit queues it again.
    if requeued:
        expiry_store.unqueue(conn, [candidate.lot_id for candidate in candidates])
    elif not done:
        expiry_store.advance_watermark(conn, candidates[-1])
    outcome = ExpiryOutcome(lots_expired=len(lots), points_expired=points, done=done, resume_after=candidates[-1])
    if lots:
        on_batch(conn, outcome)
    return outcome
