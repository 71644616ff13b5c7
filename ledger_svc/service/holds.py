"""Use cases of two-phase holds: Hold, CommitHold, ReleaseHold, GetHold, SweepExpiredHolds.

On PostgreSQL, Hold, ReleaseHold and a commit to a system account run in a few statements each (ADR 0103,
`set_based_holds`); everything else takes the general path here: lock, load into a Book, move, write.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from ledger_svc.domain.book import Book
from ledger_svc.domain.holds import (
    MAX_HOLD_TIMEOUT_US,
    Hold,
    HoldRequest,
    HoldState,
    check_repeated_commit,
    checked_commit_amount,
    commit_posting,
    reused_key,
)
from ledger_svc.domain.lots import LotKey, Portion, split_fifo
from ledger_svc.domain.names import MAX_REFERENCE_LENGTH, VALID_CODES, account_problem, require_id
from ledger_svc.domain.refusal import Refusal
from ledger_svc.domain.transfers import ItemResult, Posting, Status
from ledger_svc.service import set_based_holds
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.transfers import write_book
from ledger_svc.store import accounts as account_store
from ledger_svc.store import holds as hold_store
from ledger_svc.store import journal
from service_kit.accounts import is_system_account
from service_kit.db import one_snapshot
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_SWEEP_BATCH = 5000
DEFAULT_SWEEP_BATCH = 1000


def hold(ctx: LedgerContext, request: HoldRequest) -> Hold:
    check_hold_request(ctx, request)
    if _set_based(ctx):
        return ctx.transaction(lambda conn: set_based_holds.hold(conn, request.pending_hold(ctx.now_us())))
    return ctx.transaction(lambda conn: _hold(conn, ctx, request))


def hold_and_commit(ctx: LedgerContext, request: HoldRequest) -> tuple[Hold, ItemResult]:
    """A hold committed whole to `request.commit_to_account` in the same transaction (ADR 0122): one call and one
    transaction where a caller would send Hold and CommitHold back to back. A repeat answers ALREADY_POSTED."""
    check_hold_request(ctx, request)
    credit_account = request.commit_to_account
    if _set_based(ctx) and is_system_account(credit_account):
        placed, result = ctx.transaction(
            lambda conn: set_based_holds.hold_and_commit(conn, request.pending_hold(ctx.now_us()), credit_account)
        )
    else:

        def general(conn: Connection) -> tuple[Hold, ItemResult]:
            _hold(conn, ctx, request)
            return _commit(conn, ctx, request.hold_id, 0, credit_account)

        placed, result = ctx.transaction(general)
    if result.status is Status.POSTED:
        ctx.seal_soon()
    return placed, result


def check_hold_request(ctx: LedgerContext, request: HoldRequest) -> None:
    """The errors a Hold request is refused with before anything is read (shared with HoldBatch's items)."""
    require_id("hold_id", request.hold_id)
    problem = account_problem(request.account, ctx.region_code)
    if problem:
        raise InvalidArgument("account", problem, reason="INVALID_ACCOUNT")
    if is_system_account(request.account):
        raise InvalidArgument("account", "only user accounts can be held", reason="INVALID_ACCOUNT")
    if request.amount_points <= 0:
        raise InvalidArgument(
            "amount_points", f"must be positive, got {request.amount_points}", reason="INVALID_AMOUNT"
        )
    if not 0 <= request.timeout_us <= MAX_HOLD_TIMEOUT_US:
        raise InvalidArgument("timeout", "must be between 0 (default) and 7 days")
    if request.effective_code not in VALID_CODES:
        raise InvalidArgument("code", f"{request.code} is not a known transfer code", reason="INVALID_CODE")
    if len(request.reference) > MAX_REFERENCE_LENGTH:
        raise InvalidArgument("reference", f"is longer than {MAX_REFERENCE_LENGTH} characters")
    if request.commit_to_account:
        problem = account_problem(request.commit_to_account, ctx.region_code)
        if problem:
            raise InvalidArgument("commit_to_account", problem, reason="INVALID_ACCOUNT")
        if request.commit_to_account == request.account:
            raise InvalidArgument("commit_to_account", "must differ from the held account")


def _set_based(ctx: LedgerContext) -> bool:
    """Whether holds take the few-statement path of PostgreSQL (ADR 0103)."""
    return ctx.set_based_holds and ctx.engine.dialect.name == "postgresql"


def _hold(conn: Connection, ctx: LedgerContext, request: HoldRequest) -> Hold:
    now_us = ctx.now_us()
    users = account_store.lock_users(conn, [request.account], now_us)
    created = request.pending_hold(now_us)
    existing = hold_store.load_hold(conn, request.hold_id)
    if existing is not None:
        if existing.fingerprint == created.fingerprint:
            return existing
        raise reused_key("hold_id", request.hold_id)
    if journal.load_postings(conn, [request.hold_id]):
        raise reused_key("hold_id", request.hold_id)
    before = account_store.snapshot(users)
    hold_store.release_expired_holds(conn, users, [request.account], now_us)
    account_store.load_spendable_lots(conn, users, now_us)
    book = Book(now_us, users)
    try:
        created.lots = book.take_lots(request.account, request.amount_points, held=True)
    except Refusal as refusal:
        raise FailedPrecondition(refusal.reason, refusal.message, {"account": request.account}) from None
    account_store.write_lot_deltas(conn, users, book.lot_deltas)
    hold_store.insert_hold(conn, created)
    account_store.write_users(conn, users, before)
    return created


def commit_hold(ctx: LedgerContext, hold_id: str, amount_points: int, credit_account: str) -> tuple[Hold, ItemResult]:
    """Moves all or part of a hold to `credit_account` as transfer `hold_id`; the rest goes back to the lots."""
    check_commit_request(ctx, hold_id, amount_points, credit_account)
    if _set_based(ctx) and is_system_account(credit_account):
        hold, result = ctx.transaction(
            lambda conn: set_based_holds.commit_to_system(conn, ctx, hold_id, amount_points, credit_account)
        )
    else:
        hold, result = ctx.transaction(lambda conn: _commit(conn, ctx, hold_id, amount_points, credit_account))
    if result.status is Status.POSTED:
        ctx.seal_soon()
    return hold, result


def check_commit_request(ctx: LedgerContext, hold_id: str, amount_points: int, credit_account: str) -> None:
    """The errors a CommitHold request is refused with before anything is read (shared with CommitHolds' items)."""
    require_id("hold_id", hold_id)
    problem = account_problem(credit_account, ctx.region_code)
    if problem:
        raise InvalidArgument("credit_account", problem, reason="INVALID_ACCOUNT")
    if amount_points < 0:
        raise InvalidArgument("amount_points", "must not be negative (0 commits the whole hold)")


def _commit(
    conn: Connection, ctx: LedgerContext, hold_id: str, amount_points: int, credit_account: str
) -> tuple[Hold, ItemResult]:
    now_us = ctx.now_us()
    credit_is_user = not is_system_account(credit_account)
    held_account = _held_account(conn, hold_id)
    users = account_store.lock_users(conn, [held_account, *([credit_account] if credit_is_user else [])], now_us)
    current = hold_store.load_hold(conn, hold_id)  # re-read under the lock: it may have been resolved meanwhile
    assert current is not None
    if current.state is HoldState.COMMITTED:
        check_repeated_commit(current, amount_points, credit_account)
        return current, ItemResult(
            hold_id, Status.ALREADY_POSTED, posting=journal.load_postings(conn, [hold_id])[hold_id]
        )
    if credit_account == current.account:
        raise InvalidArgument("credit_account", "must differ from the held account")
    amount = checked_commit_amount(current, amount_points, now_us)
    before = account_store.snapshot(users)
    book = Book(now_us, users)
    posting = move_held_points(book, current, amount, credit_account)
    write_book(conn, book, users, before, [posting], now_us)
    current.state, current.committed_points, current.credit_account = HoldState.COMMITTED, amount, credit_account
    hold_store.resolve_hold(conn, current, now_us)
    return current, ItemResult(hold_id, Status.POSTED, posting=posting)


def move_held_points(book: Book, current: Hold, amount: int, credit_account: str) -> Posting:
    """A commit's moves in `book`: `amount` of the hold's points (soonest-expiring first) go to `credit_account`, the
    rest back to the held account's lots; returns the commit's posting. The single and the batched commit share it."""
    committed, rest = split_fifo(current.lots, amount)
    book.release_held(current.account, rest, current.amount_points)
    book.spend_held(current.account, amount)
    credit_lots: list[Portion] = []
    credit_is_user = not is_system_account(credit_account)
    if credit_is_user:
        # Points that change hands keep their lots' dates: moving never renews them.
        carried = [
            Portion(LotKey(credit_account, p.key.expires_at_us, p.key.earned_on), p.amount_points) for p in committed
        ]
        credit_lots = book.put_lots(credit_account, carried, fresh=False)
    else:
        book.system_change(credit_account, amount)
    return commit_posting(
        current,
        credit_account,
        committed,
        book.now_us,
        debit_balance_after=book.accounts[current.account].balance_points,
        credit_balance_after=book.accounts[credit_account].balance_points if credit_is_user else None,
        credit_lots=credit_lots,
    )


def _held_account(conn: Connection, hold_id: str) -> str:
    """The held account (to lock it before reading the hold under the lock)."""
    account = hold_store.hold_account(conn, hold_id)
    if account is None:
        raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
    return account


def release_hold(ctx: LedgerContext, hold_id: str) -> Hold:
    require_id("hold_id", hold_id)
    if _set_based(ctx):
        return ctx.transaction(lambda conn: set_based_holds.release(conn, ctx, hold_id))
    return ctx.transaction(lambda conn: _release(conn, ctx, hold_id))


def _release(conn: Connection, ctx: LedgerContext, hold_id: str) -> Hold:
    now_us = ctx.now_us()
    users = account_store.lock_users(conn, [_held_account(conn, hold_id)], now_us)
    current = hold_store.load_hold(conn, hold_id)
    assert current is not None
    if current.state is HoldState.COMMITTED:
        raise FailedPrecondition("HOLD_COMMITTED", f"hold {hold_id!r} was committed", {"hold_id": hold_id})
    if current.state is not HoldState.PENDING:
        return current  # released or expired before: releasing again changes nothing
    before = account_store.snapshot(users)
    book = Book(now_us, users)
    book.release_held(current.account, current.lots, current.amount_points)
    account_store.write_lot_deltas(conn, users, book.lot_deltas)
    account_store.write_users(conn, users, before)
    current.state = current.state_at(now_us) if current.state_at(now_us) is HoldState.EXPIRED else HoldState.RELEASED
    hold_store.resolve_hold(conn, current, now_us)
    return current


def get_hold(ctx: LedgerContext, hold_id: str) -> Hold:
    require_id("hold_id", hold_id)
    # One snapshot for the hold and its lots; ending in COMMIT, it keeps the connection's prepared statements
    # (ADR 0029).
    with one_snapshot(ctx.engine) as conn:
        found = hold_store.load_hold(conn, hold_id)
    if found is None:
        raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
    return found


def sweep_expired_holds(
    ctx: LedgerContext, batch_size: int, on_batch: Callable[[Connection, int], None] | None = None
) -> int:
    """One transaction releasing timed-out holds; `on_batch` runs in it with the count when it released any."""
    if batch_size < 0:
        raise InvalidArgument("batch_size", "must not be negative")
    limit = min(batch_size or DEFAULT_SWEEP_BATCH, MAX_SWEEP_BATCH)

    def sweep(conn: Connection) -> int:
        now_us = ctx.now_us()
        names = hold_store.expired_hold_accounts(conn, now_us, limit)
        users = account_store.lock_users(conn, names, now_us)
        before = account_store.snapshot(users)
        released = hold_store.release_expired_holds(conn, users, names, now_us)
        account_store.write_users(conn, users, before)
        if released and on_batch is not None:
            on_batch(conn, released)
        return released

    return ctx.transaction(sweep)
