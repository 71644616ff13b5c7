"""PostTransfers for credit-only batches on PostgreSQL (ADR 0102): set-based, no read of user lots.

Optimistic about ids (ADR 0106): the first attempt only asks whether a hold took one of them (and whether the first
was posted: a batch sent again is looked up at once) and writes the journal by COPY, whose unique key on transfer_id
finds an id posted before. Then the transaction rolls back and every later attempt (a fresh transaction) looks the
ids up first, reads back the transfers that used them and compares bodies, exactly as a race on an id is retried.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection

from ledger_svc.domain.credits import Credit, PostedCredits, credits_by_field, journal_entries
from ledger_svc.domain.implied_lots import IMPLIED_LOT_VALIDITY_MONTHS
from ledger_svc.domain.journal import entries_hash
from ledger_svc.domain.lots import LotKey
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.transfers import Posting
from ledger_svc.service.context import LedgerContext
from ledger_svc.store import accounts as account_store
from ledger_svc.store import journal
from ledger_svc.store import pg_credits as credit_store

_EARN = int(TransferCode.EARN)


class _GeneralPath(Exception):
    """Something the fast path does not handle (an id taken by a hold): the general path posts the batch."""


class _Sums(NamedTuple):
    """A batch's points per user account, per lot and per system account (negative: debited)."""

    per_account: dict[str, int]
    per_lot: dict[LotKey, int]
    per_system: dict[str, int]


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
    stored = _posted_before(conn, [credit.transfer_id for credit in credits], optimistic)
    fresh = [credit for credit in credits if credit.transfer_id not in stored] if stored else credits
    if not fresh:
        return PostedCredits(credits, stored, [], [], now_us)
    columns = credits_by_field(fresh)
    sums = _sums(columns)
    # Lock order (ADR 0100): user accounts, then lots, then system shards.
    balances, moved_through = credit_store.credit_users(conn, sums.per_account, now_us)
    balances_after = _balances_after(columns, sums.per_account, balances)
    batch_id = journal.insert_batch(conn, *entries_hash(journal_entries(columns, now_us)), now_us)
    credit_store.copy_transfers(conn, batch_id, fresh, balances_after, now_us)
    lot_ids = credit_store.upsert_lots(conn, sums.per_lot, moved_through)
    credit_lot_ids = list(map(lot_ids.__getitem__, columns["lot"]))
    recorded = [
        (credit, lot_id)
        for credit, lot_id, code in zip(fresh, credit_lot_ids, columns["code"], strict=True)
        if code != _EARN or not earns_implied
    ]
    if recorded:
        credit_store.copy_transfer_lots(conn, [credit for credit, _ in recorded], [lot_id for _, lot_id in recorded])
    account_store.apply_system_deltas(conn, sums.per_system)
    return PostedCredits(credits, stored, balances_after, credit_lot_ids, now_us)


def _posted_before(conn: Connection, ids: list[str], optimistic: bool) -> dict[str, Posting]:
    """The first postings of ids posted before, by id. The optimistic attempt looks nothing up unless the batch's
    first id was posted (a batch sent again); an id taken by a hold sends the batch down the general path."""
    if optimistic:
        held, first_posted = credit_store.held_or_replayed(conn, ids)
        if held:
            raise _GeneralPath
        if not first_posted:
            return {}
    posted_ids, held_ids = credit_store.taken_ids(conn, ids)
    if held_ids:
        raise _GeneralPath
    return journal.load_postings(conn, posted_ids) if posted_ids else {}


def _sums(columns: dict[str, tuple[Any, ...]]) -> _Sums:
    per_account: dict[str, int] = {}
    per_lot: dict[LotKey, int] = {}
    per_system: dict[str, int] = {}
    summed = zip(
        columns["debit_account"], columns["credit_account"], columns["amount_points"], columns["lot"], strict=True
    )
    for debit, account, points, lot in summed:
        per_account[account] = per_account.get(account, 0) + points
        per_lot[lot] = per_lot.get(lot, 0) + points
        per_system[debit] = per_system.get(debit, 0) - points
    return _Sums(per_account=per_account, per_lot=per_lot, per_system=per_system)


def _balances_after(
    columns: dict[str, tuple[Any, ...]], per_account: dict[str, int], balances: dict[str, int]
) -> list[int]:
    """Each credit's account balance just after it, from the balances after the whole batch."""
    running = {name: balances[name] - points for name, points in per_account.items()}
    balances_after: list[int] = []
    append = balances_after.append
    for account, points in zip(columns["credit_account"], columns["amount_points"], strict=True):
        balance = running[account] + points
        running[account] = balance
        append(balance)
    return balances_after
