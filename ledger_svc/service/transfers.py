"""Use cases that post and read transfers: PostTransfers and PostCredits (batches), GetTransfer.

A batch takes PostgreSQL's set-based path when every item is a fresh credit (ADR 0102, `set_based_credits`), and the
general path otherwise: lock the accounts, load their spendable lots into a Book, post there, write the changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from ledger_svc.domain.book import Book
from ledger_svc.domain.credits import CreditColumns, PostedCredits, credit_columns, plan_credits
from ledger_svc.domain.lots import UserAccount
from ledger_svc.domain.names import is_user_account
from ledger_svc.domain.posting import post_batch
from ledger_svc.domain.transfers import MAX_BATCH_TRANSFERS, ItemResult, Posting, Status, TransferRequest
from ledger_svc.service.context import LedgerContext
from ledger_svc.service.set_based_credits import post_credits
from ledger_svc.store import accounts as account_store
from ledger_svc.store import holds as hold_store
from ledger_svc.store import journal
from service_kit.db import one_snapshot
from service_kit.errors import InvalidArgument, NotFound

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
    """The general path, in one transaction: lock, load, post in the Book, write."""
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
    # One snapshot for the transfer and its lots; ending in COMMIT, it keeps the connection's prepared statements
    # (docs/adr/0029-reads-keep-their-prepared-statements.md).
    with one_snapshot(ctx.engine) as conn:
        found = journal.load_postings(conn, [transfer_id]).get(transfer_id)
    if found is None:
        raise NotFound("TRANSFER_NOT_FOUND", f"no transfer {transfer_id!r}", {"transfer_id": transfer_id})
    return found
