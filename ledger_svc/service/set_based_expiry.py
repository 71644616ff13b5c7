"""The expiry sweep on PostgreSQL, set-based (ADR 0102): the same transfers and balances as the general
sweep (`expiry.py`), written with a handful of statements per batch instead of per lot, two batches at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ledger_svc.domain.expiry import ExpiryCandidate, ExpiryOutcome, expiry_entries_hash, expiry_transfers
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import accounts as account_store
from ledger_svc.store import expiry as expiry_store
from ledger_svc.store import journal, pg_expiry
from service_kit.accounts import EXPIRY_ACCOUNT

# Batches in flight at once: the database does most of a batch's work, so while one batch waits on PostgreSQL the
# next one's Python runs, and two backends share the writes.
SWEEP_WORKERS = 2


class _InFlight(NamedTuple):
    outcome: Future[ExpiryOutcome]
    accounts: set[str]


def sweep(
    ctx: LedgerContext,
    cutoff_us: int,
    size: int,
    max_batches: int,
    on_batch: Callable[[Connection, ExpiryOutcome], None] | None = None,
    after: ExpiryCandidate | None = None,
) -> ExpiryOutcome:
    """Sweeps in batches of `size` lots (at most `max_batches`, 0: no limit), from the first expired lot after
    `after` (a run going on in steps passes the outcome's `resume_after`; None starts a run: the lots queued again,
    then the lots after the watermark, which moves to the last lot swept once every batch has committed).

    This thread reads each batch's candidates in keyset order, after the previous batch's last (expiry, lot id), and
    hands the batch to a worker. Two batches sharing an account never run at the same time, so each account's
    transfers come in key order, as in a one-batch-at-a-time sweep. Each batch is one transaction; a failed batch
    fails the sweep after those in flight end, and a run another leader left goes on from the watermark. `on_batch`
    runs in each batch's transaction that expired something."""
    batches = 0
    done = False
    total = ExpiryOutcome(lots_expired=0, points_expired=0)
    in_flight: list[_InFlight] = []
    if after is None:
        # A run's first step: the lots refilled since they were emptied (few: refunds and released holds into emptied
        # lots), one batch at a time; then the range after the watermark.
        while True:
            if max_batches and batches >= max_batches:
                return ExpiryOutcome(total.lots_expired, total.points_expired, done=False)
            with ctx.engine.connect() as conn:
                candidates = expiry_store.requeued_candidates(conn, cutoff_us, size)
            if candidates:
                work = partial(
                    _sweep_batch, ctx=ctx, candidates=candidates, cutoff_us=cutoff_us, on_batch=on_batch, requeued=True
                )
                total += ctx.transaction(work)
                batches += 1
            if len(candidates) < size:
                break
        after = ctx.transaction(lambda conn: expiry_store.run_start(conn, cutoff_us))
    start = after

    def finish(entry: _InFlight) -> None:
        nonlocal total
        in_flight.remove(entry)
        total += entry.outcome.result()

    with ThreadPoolExecutor(SWEEP_WORKERS, thread_name_prefix="ledger-expiry") as pool:
        try:
            while not done and not (max_batches and batches >= max_batches):
                with ctx.engine.connect() as conn:
                    candidates = pg_expiry.expired_lot_candidates(conn, cutoff_us, size, after)
                done = len(candidates) < size
                if not candidates:
                    break
                accounts = {candidate.account for candidate in candidates}
                for entry in [entry for entry in in_flight if entry.accounts & accounts]:
                    finish(entry)
                while len(in_flight) >= SWEEP_WORKERS:
                    finish(in_flight[0])
                work = partial(_sweep_batch, ctx=ctx, candidates=candidates, cutoff_us=cutoff_us, on_batch=on_batch)
                in_flight.append(_InFlight(pool.submit(ctx.transaction, work), accounts))
                batches += 1
                after = candidates[-1]
        finally:
            for entry in in_flight:
                entry.outcome.exception()  # wait for every batch before reporting any failure
        while in_flight:
            finish(in_flight[0])
    # Every batch up to `after` committed (a failed one raised above, leaving the watermark where it was); done,
    # every lot that expired by the cutoff was found empty or emptied.
    last = expiry_store.swept_through(cutoff_us) if done else after
    if last is not None and last != start:
        ctx.transaction(lambda conn: expiry_store.advance_watermark(conn, last))
    return ExpiryOutcome(total.lots_expired, total.points_expired, done, None if done else after)


def _sweep_batch(
    conn: Connection,
    ctx: LedgerContext,
    candidates: list[ExpiryCandidate],
    cutoff_us: int,
    on_batch: Callable[[Connection, ExpiryOutcome], None] | None = None,
    requeued: bool = False,
) -> ExpiryOutcome:
    """Empties the candidate lots that (under their accounts' locks) still hold expired points into system:expiry;
    `requeued` candidates (from expiry_requeue) leave the queue, all of them empty now."""
    now_us = ctx.now_us()
    # Lock order as everywhere: accounts (sorted) first, then their lots, then system shards. Locking an account is
    # taking off it what its lots held when found (ADR 0131): one write of each account, not a lock and then a write.
    expected: dict[str, int] = defaultdict(int)
    for candidate in candidates:
        expected[candidate.account] += candidate.points
    try:
        with conn.begin_nested():
            users = pg_expiry.debit_accounts(conn, expected)
    except IntegrityError:
        # An account would fall below what it holds: its lots lost points since they were found, which only a sweep
        # does to expired lots (another leader's, still running). Lock first and take only what the lots lose.
        users = pg_expiry.lock_accounts(conn, list(expected))
        expected = defaultdict(int)
    swept = pg_expiry.empty_lots(conn, [candidate.lot_id for candidate in candidates], cutoff_us)
    # A lot found before its account was locked may hold something else now (a refund refilled it, another sweep
    # emptied it): the accounts lose exactly what their lots lose.
    for lot in swept:
        expected[lot.account] -= lot.points
    corrections = {account: points for account, points in expected.items() if points}
    if corrections:
        pg_expiry.correct_accounts(conn, corrections)
    if requeued:
        # Under the accounts' locks, so no refill comes between the emptying and this; a later one queues again.
        expiry_store.unqueue(conn, [candidate.lot_id for candidate in candidates])
    transfers = expiry_transfers(swept, users, now_us)
    points = sum(transfer.lot.points for transfer in transfers)
    if transfers:
        digest, count = expiry_entries_hash(transfers, now_us)
        batch_id = journal.insert_batch(conn, digest, count, now_us)
        pg_expiry.copy_expiry_transfers(conn, transfers, batch_id, now_us)
        account_store.apply_system_deltas(conn, {EXPIRY_ACCOUNT: points})
    outcome = ExpiryOutcome(lots_expired=len(transfers), points_expired=points, done=False)
    if transfers and on_batch is not None:
        on_batch(conn, outcome)
    return outcome
