"""PostTransfers for credit-only batches on PostgreSQL (ADR 0102): set-based, no read of user lots.

Optimistic about ids (ADR 0106): the first attempt only asks whether a hold took one of them (and whether the first
was posted: a batch sent again is looked up at once) and writes the journal by COPY, whose unique key on transfer_id
finds an id posted before. Then the transaction rolls back and every later attempt (a fresh transaction) looks the
ids up first, reads back the transfers that used them and compares bodies, exactly as a race on an id is retried.
"""

from __future__ import annotations

from operator import itemgetter

from sqlalchemy import Connection

from ledger_svc.domain.credits import Credit, PostedCredits
from ledger_svc.domain.journal import entries_hash_of_fields
from ledger_svc.domain.lots import LotKey
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.posting import IMPLIED_LOT_VALIDITY_MONTHS, Posting
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import accounts as account_store
from ledger_svc.store import credits as credit_store
from ledger_svc.store import journal

_EARN = int(TransferCode.EARN)
_lot_of = itemgetter(10)  # Credit.lot, for map() in C


class _GeneralPath(Exception):
    """Something the fast path does not handle (an id taken by a hold): the general path posts the batch."""


def post_credits(ctx: LedgerContext, credits: list[Credit], now_us: int) -> PostedCredits | None:
    """The batch as posted (answers per item: `results()`, `columns()`), or None when the general path must post
    it instead."""
    # Earns fill the lot their transfer implies and need no lot record, unless this ledger's validity differs.
    earns_implied = ctx.validity_months == IMPLIED_LOT_VALIDITY_MONTHS
    attempts = 0

    def attempt(conn: Connection) -> PostedCredits:
        nonlocal attempts
        attempts += 1
        return _post(conn, credits, now_us, attempts == 1, earns_implied)

    try:
        return ctx.transaction(attempt)
    except _GeneralPath:
        return None


def _post(conn: Connection, credits: list[Credit], now_us: int, optimistic: bool, earns_implied: bool) -> PostedCredits:
    ids = [credit.transfer_id for credit in credits]
    stored: dict[str, Posting] = {}
    if optimistic:
        held, first_posted = credit_store.held_or_replayed(conn, ids)
        if held:
            raise _GeneralPath
        optimistic = not first_posted  # a batch sent again: look its ids up now
    if not optimistic:
        posted_ids, held_ids = credit_store.taken_ids(conn, ids)
        if held_ids:
            raise _GeneralPath
        stored = journal.load_postings(conn, posted_ids) if posted_ids else {}
    fresh = [credit for credit in credits if credit.transfer_id not in stored] if stored else credits
    if not fresh:
        return PostedCredits(credits, stored, [], [], now_us)
    per_account: dict[str, int] = {}
    per_lot: dict[LotKey, int] = {}
    per_system: dict[str, int] = {}
    for _, debit, account, points, _, _, _, _, _, _, lot in fresh:
        per_account[account] = per_account.get(account, 0) + points
        per_lot[lot] = per_lot.get(lot, 0) + points
        per_system[debit] = per_system.get(debit, 0) - points
    # Lock order (ADR 0100): user accounts, then lots, then system shards.
    balances = credit_store.credit_users(conn, per_account, now_us)
    running = {name: balances[name] - points for name, points in per_account.items()}
    balances_after: list[int] = []
    append_balance = balances_after.append
    for credit in fresh:
        balance = running[credit.credit_account] + credit.amount_points
        running[credit.credit_account] = balance
        append_balance(balance)
    digest, count = entries_hash_of_fields(
        [
            (
                c.transfer_id,
                c.debit_account,
                c.credit_account,
                c.amount_points,
                c.code,
                now_us,
                c.reference,
                c.co2e_grams,
                c.metadata_json,
            )
            for c in fresh
        ]
    )
    batch_id = credit_store.insert_batch(conn, digest, count, now_us)
    credit_store.copy_transfers(conn, batch_id, fresh, balances_after, now_us)
    lot_ids = credit_store.upsert_lots(conn, per_lot)
    credit_lot_ids = list(map(lot_ids.__getitem__, map(_lot_of, fresh)))
    recorded = [
        (credit, lot_id)
        for credit, lot_id in zip(fresh, credit_lot_ids, strict=True)
        if credit.code != _EARN or not earns_implied
    ]
    if recorded:
        credit_store.copy_transfer_lots(conn, [credit for credit, _ in recorded], [lot_id for _, lot_id in recorded])
    account_store.apply_system_deltas(conn, per_system)
    return PostedCredits(credits, stored, balances_after, credit_lot_ids, now_us)
