"""Use cases of two-phase holds: Hold, CommitHold, ReleaseHold, GetHold, SweepExpiredHolds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ledger_svc.domain.book import Book
from ledger_svc.domain.holds import DEFAULT_HOLD_TIMEOUT_US, MAX_HOLD_TIMEOUT_US, Hold, HoldState
from ledger_svc.domain.lots import LotKey, Portion, Refusal, split_fifo
from ledger_svc.domain.names import VALID_CODES, TransferCode, account_problem, is_system_account
from ledger_svc.domain.posting import ItemResult, Posting, Status, fingerprint_of, metadata_json
from ledger_svc.service import holds_pg
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.holds_pg import checked_commit_amount, reused
from ledger_svc.service.postings import _require_id, write_book
from ledger_svc.store import accounts as account_store
from ledger_svc.store import holds as hold_store
from ledger_svc.store import journal
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_SWEEP_BATCH = 5000


@dataclass(frozen=True)
class HoldRequest:
    hold_id: str
    account: str
    amount_points: int
    timeout_us: int = 0  # 0: the default timeout
    code: int = 0  # 0: REDEEM
    reference: str = ""
    metadata: tuple[tuple[str, str], ...] = ()


def hold(ctx: LedgerContext, request: HoldRequest) -> Hold:
    _require_id("hold_id", request.hold_id)
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
    code = request.code or int(TransferCode.REDEEM)
    if code not in VALID_CODES:
        raise InvalidArgument("code", f"{request.code} is not a known transfer code", reason="INVALID_CODE")
    if len(request.reference) > 256:
        raise InvalidArgument("reference", "is longer than 256 characters")
    timeout_us = request.timeout_us or DEFAULT_HOLD_TIMEOUT_US
    body = [
        "hold",
        request.account,
        request.amount_points,
        timeout_us,
        code,
        request.reference,
        sorted(request.metadata),
    ]
    fingerprint = fingerprint_of(body)
    if _set_based(ctx):
        return ctx.transaction(
            lambda conn: holds_pg.hold(conn, _pending(request, code, timeout_us, fingerprint, ctx.now_us()))
        )
    return ctx.transaction(lambda conn: _hold(conn, ctx, request, code, timeout_us, fingerprint))


def _set_based(ctx: LedgerContext) -> bool:
    """Whether holds take the few-statement path of PostgreSQL (ADR 0103)."""
    return ctx.set_based_holds and ctx.engine.dialect.name == "postgresql"


def _pending(request: HoldRequest, code: int, timeout_us: int, fingerprint: str, now_us: int) -> Hold:
    return Hold(
        hold_id=request.hold_id,
        account=request.account,
        amount_points=request.amount_points,
        state=HoldState.PENDING,
        expires_at_us=now_us + timeout_us,
        code=code,
        fingerprint=fingerprint,
        created_at_us=now_us,
        reference=request.reference,
        metadata_json=metadata_json(dict(request.metadata)),
    )


def _hold(
    conn: Connection, ctx: LedgerContext, request: HoldRequest, code: int, timeout_us: int, fingerprint: str
) -> Hold:
    now_us = ctx.now_us()
    users = account_store.lock_users(conn, [request.account], now_us)
    existing = hold_store.load_hold(conn, request.hold_id)
    if existing is not None:
        if existing.fingerprint == fingerprint:
            return existing
        raise reused("hold_id", request.hold_id)
    if journal.load_postings(conn, [request.hold_id]):
        raise reused("hold_id", request.hold_id)
    before = account_store.snapshot(users)
    hold_store.release_expired_holds(conn, users, [request.account], now_us)
    account_store.load_spendable_lots(conn, users, now_us)
    book = Book(now_us, users)
    try:
        portions = book.take_lots(request.account, request.amount_points, held=True)
    except Refusal as refusal:
        raise FailedPrecondition(refusal.reason, refusal.message, {"account": request.account}) from None
    account_store.write_lot_deltas(conn, users, book.lot_deltas)
    created = _pending(request, code, timeout_us, fingerprint, now_us)
    created.lots = portions
    hold_store.insert_hold(conn, created)
    account_store.write_users(conn, users, before)
    return created


def commit_hold(ctx: LedgerContext, hold_id: str, amount_points: int, credit_account: str) -> tuple[Hold, ItemResult]:
    """Moves all or part of a hold to `credit_account` as transfer `hold_id`; the rest goes back to the lots."""
    _require_id("hold_id", hold_id)
    problem = account_problem(credit_account, ctx.region_code)
    if problem:
        raise InvalidArgument("credit_account", problem, reason="INVALID_ACCOUNT")
    if amount_points < 0:
        raise InvalidArgument("amount_points", "must not be negative (0 commits the whole hold)")
    if _set_based(ctx) and is_system_account(credit_account):
        outcome = ctx.transaction(
            lambda conn: holds_pg.commit_to_system(conn, ctx, hold_id, amount_points, credit_account)
        )
    else:
        outcome = ctx.transaction(lambda conn: _commit(conn, ctx, hold_id, amount_points, credit_account))
    if outcome[1].status is Status.POSTED:
        ctx.seal_soon()
    return outcome


def _commit(
    conn: Connection, ctx: LedgerContext, hold_id: str, amount_points: int, credit_account: str
) -> tuple[Hold, ItemResult]:
    now_us = ctx.now_us()
    credit_is_user = not is_system_account(credit_account)
    held_account = hold_store.hold_account(conn, hold_id)
    if held_account is None:
        raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
    users = account_store.lock_users(conn, [held_account, *([credit_account] if credit_is_user else [])], now_us)
    current = hold_store.load_hold(conn, hold_id)  # re-read under the lock: it may have been resolved meanwhile
    assert current is not None
    if current.state is HoldState.COMMITTED:
        if current.is_same_commit(amount_points, credit_account):
            posting = journal.load_postings(conn, [hold_id])[hold_id]
            return current, ItemResult(hold_id, Status.ALREADY_POSTED, posting=posting)
        raise reused("hold_id", hold_id, "the hold was committed before with a different amount or credit account")
    if credit_account == current.account:
        raise InvalidArgument("credit_account", "must differ from the held account")
    amount = checked_commit_amount(current, amount_points, now_us)
    before = account_store.snapshot(users)
    book = Book(now_us, users)
    committed, rest = split_fifo(current.lots, amount)
    book.release_held(current.account, rest, current.amount_points)
    book.spend_held(current.account, amount)
    credit_lots: list[Portion] = []
    if credit_is_user:
        # Points that change hands keep their lots' dates: moving never renews them.
        carried = [
            Portion(LotKey(credit_account, p.key.expires_at_us, p.key.earned_on), p.amount_points) for p in committed
        ]
        credit_lots = book.put_lots(credit_account, carried, fresh=False)
    else:
        book.system_change(credit_account, amount)
    posting = Posting(
        transfer_id=hold_id,
        debit_account=current.account,
        credit_account=credit_account,
        amount_points=amount,
        code=current.code,
        posted_at_us=now_us,
        fingerprint=fingerprint_of(["commit", hold_id, credit_account, amount]),
        reference=current.reference,
        metadata_json=current.metadata_json,
        debit_balance_after=users[current.account].balance_points,
        credit_balance_after=users[credit_account].balance_points if credit_is_user else None,
        debit_lots=committed,
        credit_lots=credit_lots,
    )
    write_book(conn, book, users, before, [posting], now_us)
    current.state = HoldState.COMMITTED
    current.committed_points = amount
    current.credit_account = credit_account
    hold_store.resolve_hold(conn, current, now_us)
    return current, ItemResult(hold_id, Status.POSTED, posting=posting)


def release_hold(ctx: LedgerContext, hold_id: str) -> Hold:
    _require_id("hold_id", hold_id)
    if _set_based(ctx):
        return ctx.transaction(lambda conn: holds_pg.release(conn, ctx, hold_id))
    return ctx.transaction(lambda conn: _release(conn, ctx, hold_id))


def _release(conn: Connection, ctx: LedgerContext, hold_id: str) -> Hold:
    now_us = ctx.now_us()
    held_account = hold_store.hold_account(conn, hold_id)
    if held_account is None:
        raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
    users = account_store.lock_users(conn, [held_account], now_us)
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
    _require_id("hold_id", hold_id)
    with ctx.engine.connect() as conn:
        found = hold_store.load_hold(conn, hold_id)
    if found is None:
        raise NotFound("HOLD_NOT_FOUND", f"no hold {hold_id!r}", {"hold_id": hold_id})
    return found


def sweep_expired_holds(ctx: LedgerContext, batch_size: int) -> int:
    if batch_size < 0:
        raise InvalidArgument("batch_size", "must not be negative")
    limit = min(batch_size or 1000, MAX_SWEEP_BATCH)

    def sweep(conn: Connection) -> int:
        now_us = ctx.now_us()
        names = hold_store.expired_hold_accounts(conn, now_us, limit)
        users = account_store.lock_users(conn, names, now_us)
        before = account_store.snapshot(users)
        released = hold_store.release_expired_holds(conn, users, names, now_us)
        account_store.write_users(conn, users, before)
        return released

    return ctx.transaction(sweep)
