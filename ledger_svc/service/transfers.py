"""Use cases that post transfers: PostTransfers (batches), GetTransfer, RefundTransfer."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from ledger_svc.domain.book import Book
from ledger_svc.domain.credits import CreditColumns, PostedCredits, credit_columns, plan_credits
from ledger_svc.domain.lots import Portion, Refusal, UserAccount
from ledger_svc.domain.names import MAX_ID_LENGTH, TransferCode, is_system_account, is_user_account
from ledger_svc.domain.posting import (
    MAX_BATCH_TRANSFERS,
    ItemResult,
    Posting,
    Status,
    TransferRequest,
    fingerprint_of,
    metadata_json,
    post_batch,
)
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.credits import post_credits
from ledger_svc.store import accounts as account_store
from ledger_svc.store import holds as hold_store
from ledger_svc.store import journal
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

# A fingerprint no body has: ids held by holds are taken, whatever the body.
_RESERVED = "reserved-by-hold"


def post_transfers(ctx: LedgerContext, requests: list[TransferRequest]) -> list[ItemResult]:
    posted = _post_batch(ctx, requests)
    return posted.results() if isinstance(posted, PostedCredits) else posted


def post_credit_columns(ctx: LedgerContext, requests: list[TransferRequest]) -> CreditColumns:
    """PostTransfers for PostCredits: the same batch posted the same way, answered as the columns PostCredits sends
    (from the set-based path without a result object per credit)."""
    posted = _post_batch(ctx, requests)
    return posted.columns() if isinstance(posted, PostedCredits) else credit_columns(posted)


def _post_batch(ctx: LedgerContext, requests: list[TransferRequest]) -> PostedCredits | list[ItemResult]:
    if not requests:
        raise InvalidArgument("transfers", "at least one transfer is required")
    if len(requests) > MAX_BATCH_TRANSFERS:
        raise InvalidArgument(
            "transfers",
            f"at most {MAX_BATCH_TRANSFERS} transfers per call, got {len(requests)}",
            reason="BATCH_TOO_LARGE",
        )
    if ctx.credit_fast_path and ctx.engine.dialect.name == "postgresql":
        now_us = ctx.now_us()
        credits = plan_credits(requests, ctx.region_code, ctx.validity_months, now_us)
        if credits is not None:
            posted = post_credits(ctx, credits, now_us)
            if posted is not None:
                if posted.any_posted:
                    ctx.seal_soon()
                return posted
    results = ctx.transaction(lambda conn: _post(conn, ctx, requests))
    if any(result.status is Status.POSTED for result in results):
        ctx.seal_soon()
    return results


def _post(conn: Connection, ctx: LedgerContext, requests: list[TransferRequest]) -> list[ItemResult]:
    now_us = ctx.now_us()
    region = ctx.region_code
    debited = {r.debit_account for r in requests if is_user_account(r.debit_account, region)}
    credited = {r.credit_account for r in requests if is_user_account(r.credit_account, region)}
    users = account_store.lock_users(conn, debited | credited, now_us)
    before = account_store.snapshot(users)
    hold_store.release_expired_holds(conn, users, debited, now_us)
    account_store.load_spendable_lots(conn, {name: users[name] for name in debited}, now_us)
    ids = [r.transfer_id for r in requests if r.transfer_id]
    stored = journal.stored_results(journal.load_postings(conn, ids))
    for hold_id in hold_store.existing_hold_ids(conn, set(ids) - set(stored)):
        stored[hold_id] = (_RESERVED, ItemResult(hold_id, Status.FAILED))
    book = Book(now_us, users)
    results = post_batch(book, requests, stored, region, ctx.validity_months)
    postings = [result.posting for result in results if result.status is Status.POSTED and result.posting]
    write_book(conn, book, users, before, postings, now_us)
    return results


def write_book(
    conn: Connection,
    book: Book,
    users: Mapping[str, UserAccount],
    before: Mapping[str, tuple[int, int]],
    postings: list[Posting],
    now_us: int,
) -> None:
    """Writes a transaction's changes in lock order: lots, journal, user accounts, then system shards."""
    account_store.write_lot_deltas(conn, users, book.lot_deltas)
    journal.fill_lot_ids(postings, lambda key: users[key.account].lots[key].lot_id)
    journal.insert_postings(conn, postings, now_us)
    account_store.write_users(conn, users, before)
    account_store.apply_system_deltas(conn, book.system_deltas)


def get_transfer(ctx: LedgerContext, transfer_id: str) -> Posting:
    if not transfer_id:
        raise InvalidArgument("transfer_id", "is required")
    with ctx.engine.connect() as conn:
        found = journal.load_postings(conn, [transfer_id]).get(transfer_id)
    if found is None:
        raise NotFound("TRANSFER_NOT_FOUND", f"no transfer {transfer_id!r}", {"transfer_id": transfer_id})
    return found


def refund_transfer(
    ctx: LedgerContext, refund_id: str, original_transfer_id: str, amount_points: int, reason: str
) -> ItemResult:
    """Restores the points of a posted debit to the lots it took them from, latest-expiring first."""
    _require_id("refund_id", refund_id)
    _require_id("original_transfer_id", original_transfer_id)
    if amount_points < 0:
        raise InvalidArgument("amount_points", "must not be negative (0 refunds the whole remaining amount)")
    if len(reason) > 256:
        raise InvalidArgument("reason", "is longer than 256 characters")
    fingerprint = fingerprint_of(["refund", original_transfer_id, amount_points, reason])
    result = ctx.transaction(
        lambda conn: _refund(conn, ctx, refund_id, original_transfer_id, amount_points, reason, fingerprint)
    )
    if result.status is Status.POSTED:
        ctx.seal_soon()
    return result


def _refund(
    conn: Connection,
    ctx: LedgerContext,
    refund_id: str,
    original_id: str,
    amount_points: int,
    reason: str,
    fingerprint: str,
) -> ItemResult:
    now_us = ctx.now_us()
    found = journal.load_postings(conn, [refund_id, original_id])
    if refund_id in found or hold_store.existing_hold_ids(conn, [refund_id]):
        if refund_id in found and found[refund_id].fingerprint == fingerprint:
            return ItemResult(refund_id, Status.ALREADY_POSTED, posting=found[refund_id])
        raise AlreadyExists("IDEMPOTENCY_KEY_REUSED", f"refund_id {refund_id!r} was used before with a different body")
    original = found.get(original_id)
    if original is None:
        raise NotFound("TRANSFER_NOT_FOUND", f"no transfer {original_id!r}", {"transfer_id": original_id})
    if not original.debit_lots or original.refund_of is not None or original.code == TransferCode.EXPIRE:
        raise FailedPrecondition("NOT_REFUNDABLE", f"transfer {original_id!r} is not a debit of a user account's lots")
    user_names = [original.debit_account]
    if not is_system_account(original.credit_account):
        user_names.append(original.credit_account)
    users = account_store.lock_users(conn, user_names, now_us)
    before = account_store.snapshot(users)
    payer = original.credit_account
    if not is_system_account(payer):
        hold_store.release_expired_holds(conn, users, [payer], now_us)
        account_store.load_spendable_lots(conn, {payer: users[payer]}, now_us)
    refunded_points, refunded_per_lot = journal.refunded_by_lot(conn, original_id)
    refundable = original.amount_points - refunded_points
    amount = amount_points or refundable
    if refundable == 0 or amount > refundable:
        raise FailedPrecondition(
            "REFUND_EXCEEDS_ORIGINAL",
            f"{refundable} of transfer {original_id!r} can still be refunded, {amount} asked",
            {"refundable_points": refundable},
        )
    restore = _restore_portions(original.debit_lots, refunded_per_lot, amount)
    book = Book(now_us, users)
    try:
        if is_system_account(payer):
            book.system_change(payer, -amount)
        else:
            book.take_lots(payer, amount)
        placed = book.put_lots(original.debit_account, restore, fresh=False)
    except Refusal as refusal:
        raise FailedPrecondition(refusal.reason, refusal.message) from None
    posting = Posting(
        transfer_id=refund_id,
        debit_account=payer,
        credit_account=original.debit_account,
        amount_points=amount,
        code=int(TransferCode.REFUND),
        posted_at_us=now_us,
        fingerprint=fingerprint,
        reference=original_id,
        metadata_json=metadata_json({"reason": reason} if reason else {}),
        debit_balance_after=None if is_system_account(payer) else users[payer].balance_points,
        credit_balance_after=users[original.debit_account].balance_points,
        credit_lots=placed,
        refund_of=original_id,
    )
    write_book(conn, book, users, before, [posting], now_us)
    return ItemResult(refund_id, Status.POSTED, posting=posting)


def _restore_portions(taken: list[Portion], refunded_per_lot: Mapping[int, int], amount_points: int) -> list[Portion]:
    """The latest-expiring points taken come back first (the user keeps the longest-lived points)."""
    restore: list[Portion] = []
    still_needed = amount_points
    for portion in sorted(taken, key=lambda item: item.key, reverse=True):
        assert portion.lot_id is not None
        left = portion.amount_points - refunded_per_lot.get(portion.lot_id, 0)
        give = min(left, still_needed)
        if give > 0:
            restore.append(Portion(portion.key, give, portion.lot_id))
            still_needed -= give
    assert still_needed == 0, "refundable points were counted but not found in the original lots"
    return restore


def _require_id(field: str, value: str) -> None:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"is longer than {MAX_ID_LENGTH} characters")
