"""RefundTransfer: a posted debit's points go back to the lots it took them from, paid by whoever received them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ledger_svc.domain.book import Book
from ledger_svc.domain.fingerprints import metadata_json
from ledger_svc.domain.lots import Portion, UserAccount
from ledger_svc.domain.names import TransferCode, require_id
from ledger_svc.domain.refunds import check_refundable, refund_amount, refund_fingerprint, restore_portions
from ledger_svc.domain.refusal import Refusal
from ledger_svc.domain.transfers import ItemResult, Posting, Status
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.transfers import write_book
from ledger_svc.store import accounts as account_store
from ledger_svc.store import holds as hold_store
from ledger_svc.store import journal
from service_kit.accounts import is_system_account
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

MAX_REASON_LENGTH = 256


def refund_transfer(
    ctx: LedgerContext, refund_id: str, original_transfer_id: str, amount_points: int, reason: str
) -> ItemResult:
    """Restores the points of a posted debit to the lots it took them from, latest-expiring first (0 points: all
    that is left to refund)."""
    require_id("refund_id", refund_id)
    require_id("original_transfer_id", original_transfer_id)
    if amount_points < 0:
        raise InvalidArgument("amount_points", "must not be negative (0 refunds the whole remaining amount)")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidArgument("reason", f"is longer than {MAX_REASON_LENGTH} characters")
    fingerprint = refund_fingerprint(original_transfer_id, amount_points, reason)
    request = _Refund(refund_id, original_transfer_id, amount_points, reason, fingerprint)
    result = ctx.transaction(lambda conn: _refund(conn, ctx, request))
    if result.status is Status.POSTED:
        ctx.seal_soon()
    return result


@dataclass(frozen=True)
class _Refund:
    refund_id: str
    original_id: str
    amount_points: int
    reason: str
    fingerprint: str


def _refund(conn: Connection, ctx: LedgerContext, request: _Refund) -> ItemResult:
    now_us = ctx.now_us()
    found = journal.load_postings(conn, [request.refund_id, request.original_id])
    replay = _replay(conn, request, found)
    if replay is not None:
        return replay
    original = found.get(request.original_id)
    if original is None:
        raise NotFound(
            "TRANSFER_NOT_FOUND", f"no transfer {request.original_id!r}", {"transfer_id": request.original_id}
        )
    check_refundable(original)
    users, before = _lock_both_sides(conn, original, now_us)
    refunded_points, refunded_per_lot = journal.refunded_by_lot(conn, request.original_id)
    amount = refund_amount(original, refunded_points, request.amount_points)
    book = Book(now_us, users)
    placed = _pay_back(book, original, restore_portions(original.debit_lots, refunded_per_lot, amount), amount)
    payer = original.credit_account
    posting = Posting(
        transfer_id=request.refund_id,
        debit_account=payer,
        credit_account=original.debit_account,
        amount_points=amount,
        code=int(TransferCode.REFUND),
        posted_at_us=now_us,
        fingerprint=request.fingerprint,
        reference=request.original_id,
        metadata_json=metadata_json({"reason": request.reason} if request.reason else {}),
        debit_balance_after=None if is_system_account(payer) else users[payer].balance_points,
        credit_balance_after=users[original.debit_account].balance_points,
        credit_lots=placed,
        refund_of=request.original_id,
    )
    write_book(conn, book, users, before, [posting], now_us)
    return ItemResult(request.refund_id, Status.POSTED, posting=posting)


def _replay(conn: Connection, request: _Refund, found: dict[str, Posting]) -> ItemResult | None:
    """The first answer when the refund id was used for this refund before; an error when used for anything else."""
    if request.refund_id not in found and not hold_store.existing_hold_ids(conn, [request.refund_id]):
        return None
    first = found.get(request.refund_id)
    if first is not None and first.fingerprint == request.fingerprint:
        return ItemResult(request.refund_id, Status.ALREADY_POSTED, posting=first)
    raise AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED", f"refund_id {request.refund_id!r} was used before with a different body"
    )


def _lock_both_sides(
    conn: Connection, original: Posting, now_us: int
) -> tuple[dict[str, UserAccount], dict[str, tuple[int, int]]]:
    """Locks the user accounts of the original transfer and snapshots them (for `write_book`); then the payer's
    timed-out holds are released and its spendable lots loaded: it pays the refund from them."""
    payer = original.credit_account
    names = [original.debit_account] if is_system_account(payer) else [original.debit_account, payer]
    users = account_store.lock_users(conn, names, now_us)
    before = account_store.snapshot(users)
    if not is_system_account(payer):
        hold_store.release_expired_holds(conn, users, [payer], now_us)
        account_store.load_spendable_lots(conn, {payer: users[payer]}, now_us)
    return users, before


def _pay_back(book: Book, original: Posting, restore: list[Portion], amount: int) -> list[Portion]:
    """Takes the refund from the payer (its lots, FIFO, or a system account) and puts it into the original lots."""
    payer = original.credit_account
    try:
        if is_system_account(payer):
            book.system_change(payer, -amount)
        else:
            book.take_lots(payer, amount)
        return book.put_lots(original.debit_account, restore, fresh=False)
    except Refusal as refusal:
        raise FailedPrecondition(refusal.reason, refusal.message) from None
