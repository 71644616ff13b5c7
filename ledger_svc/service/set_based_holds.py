"""Hold, CommitHold (to a system account) and ReleaseHold on PostgreSQL in two or three statements each (ADR 0103).

The same rules and answers as the general path in `holds.py`, which SQLite (and a commit to a user account) takes:
a test runs the same random sequences through both and compares everything.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection

from ledger_svc.domain.holds import (
    Hold,
    HoldState,
    check_repeated_commit,
    checked_commit_amount,
    commit_posting,
    reused_key,
)
from ledger_svc.domain.journal import entries_hash, entry_of
from ledger_svc.domain.lots import split_fifo
from ledger_svc.domain.transfers import ItemResult, Status
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import journal, pg_holds
from ledger_svc.store.accounts import shard_of_this_thread
from service_kit.errors import FailedPrecondition, NotFound


def hold(conn: Connection, created: Hold) -> Hold:
    """Records `created` (a pending hold without lots yet), or answers a replay of it."""
    placed, _ = _place(conn, created)
    return placed


def hold_and_commit(conn: Connection, created: Hold, credit_account: str) -> tuple[Hold, ItemResult]:
    """Records `created` and commits it whole to the system account `credit_account` (ADR 0122), or answers a replay:
    the account stays locked from the hold to the commit, so the hold is not read back."""
    placed, balance_points = _place(conn, created)
    if balance_points is None:  # a replay: such a hold is committed in the transaction that placed it
        posting = journal.load_postings(conn, [placed.hold_id])[placed.hold_id]
        return placed, ItemResult(placed.hold_id, Status.ALREADY_POSTED, posting=posting)
    amount = placed.amount_points
    posting = commit_posting(placed, credit_account, placed.lots, created.created_at_us, balance_points - amount)
    digest, _ = entries_hash([entry_of(posting)])
    resolved = replace(placed, state=HoldState.COMMITTED, committed_points=amount, credit_account=credit_account)
    written = pg_holds.commit_to_system(
        conn,
        resolved,
        placed.lots,
        [],
        digest=digest,
        fingerprint=posting.fingerprint,
        balance_after=balance_points - amount,
        shard=shard_of_this_thread(),
        now_us=created.created_at_us,
    )
    assert written, "a hold placed under its account's lock is pending until this commit"
    return resolved, ItemResult(placed.hold_id, Status.POSTED, posting=posting)


def _place(conn: Connection, created: Hold) -> tuple[Hold, int | None]:
    """The hold placed, with the account's balance points (held points included); or the hold stored under this id
    with the same body and None (a replay)."""
    locked, taken = pg_holds.lock_for_hold(conn, created.account, created.hold_id, created.created_at_us)
    if taken:
        existing = pg_holds.load_hold(conn, created.hold_id)
        if existing is not None and existing.fingerprint == created.fingerprint:
            return existing, None
        raise reused_key("hold_id", created.hold_id)
    if locked.held_points > 0:  # an account holding nothing has no timed-out hold to release
        pg_holds.release_expired(conn, [created.account], created.created_at_us)
    available, portions = pg_holds.take_hold(conn, created)
    if available < created.amount_points:
        raise FailedPrecondition(
            "INSUFFICIENT_POINTS",
            f"account {created.account} has {available} spendable points, {created.amount_points} needed",
            {"account": created.account},
        )
    created.lots = portions
    return created, locked.balance_points


def commit_to_system(
    conn: Connection, ctx: LedgerContext, hold_id: str, amount_points: int, credit_account: str
) -> tuple[Hold, ItemResult]:
    now_us = ctx.now_us()
    current, balance_points = _locked_hold(conn, hold_id, now_us)
    while True:
        if current.state is HoldState.COMMITTED:
            check_repeated_commit(current, amount_points, credit_account)
            posting = journal.load_postings(conn, [hold_id])[hold_id]
            return current, ItemResult(hold_id, Status.ALREADY_POSTED, posting=posting)
        amount = checked_commit_amount(current, amount_points, now_us)
        committed, back = split_fifo(current.lots, amount)
        posting = commit_posting(
            current, credit_account, committed, now_us, debit_balance_after=balance_points - amount
        )
        digest, _ = entries_hash([entry_of(posting)])
        resolved = replace(current, state=HoldState.COMMITTED, committed_points=amount, credit_account=credit_account)
        if pg_holds.commit_to_system(
            conn,
            resolved,
            committed,
            back,
            digest=digest,
            fingerprint=posting.fingerprint,
            balance_after=balance_points - amount,
            shard=shard_of_this_thread(),
            now_us=now_us,
        ):
            return resolved, ItemResult(hold_id, Status.POSTED, posting=posting)
        current = _reread(conn, hold_id)


def release(conn: Connection, ctx: LedgerContext, hold_id: str) -> Hold:
    now_us = ctx.now_us()
    current, _ = _locked_hold(conn, hold_id, now_us)
    while True:
        if current.state is HoldState.COMMITTED:
            raise FailedPrecondition("HOLD_COMMITTED", f"hold {hold_id!r} was committed", {"hold_id": hold_id})
        if current.state is not HoldState.PENDING:
            return current  # released or expired before: releasing again changes nothing
        state = HoldState.EXPIRED if current.state_at(now_us) is HoldState.EXPIRED else HoldState.RELEASED
        resolved = replace(current, state=state)
        if pg_holds.resolve_without_posting(conn, resolved, resolved.lots, now_us):
            return resolved
        current = _reread(conn, hold_id)


def _locked_hold(conn: Connection, hold_id: str, now_us: int) -> tuple[Hold, int]:
    """Locks the held account; the hold as read then (it may have been resolved while we waited for the lock: the
    guarded writes then change nothing and it is read again) and the account's balance."""
    found = pg_holds.lock_and_read_hold(conn, hold_id, now_us)
    if found is None:
        raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
    return found


def _reread(conn: Connection, hold_id: str) -> Hold:
    """The hold read again under its account's lock: no longer pending, so the next decision is final."""
    current = pg_holds.load_hold(conn, hold_id)
    assert current is not None and current.state is not HoldState.PENDING, "a pending hold's write cannot miss"
    return current
