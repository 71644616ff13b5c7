"""PostgreSQL statements of a credit-only batch (ADR 0102): COPY for the per-item rows, one upsert over arrays per
table for the sums, no statement per item; and the look-ups of ids the batch may not use.

Lock order as everywhere (ADR 0100): user accounts (sorted), then lots (sorted), then system shards.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from ledger_svc.domain.credits import Credit
from ledger_svc.domain.lots import LotKey, is_recent
from ledger_svc.store.tables import JOURNAL_LAST_SEQ, lot_key_columns, lots, recent_lots
from service_kit.pg_copy import COPY_ESCAPES, copy_into

# Ids of the batch already taken, by a posted transfer ('t') or by a hold ('h'): one probe per id and table.
_TAKEN_IDS = text(
    """
    SELECT transfer_id, 't' FROM transfers WHERE transfer_id = ANY(CAST(:ids AS text[]))
    UNION ALL SELECT hold_id, 'h' FROM holds WHERE hold_id = ANY(CAST(:ids AS text[]))
    """
)
# The optimistic attempt's one question (ADR 0106): did a hold take one of the batch's ids (the unique key on
# transfers cannot tell: a hold is not a transfer), and was the batch's first id posted (a batch sent again whole,
# looked up at once rather than after a rolled-back COPY)? Hold ids and credit ids are usually named apart
# ('rewards:redeem:...', 'earn-...'): when no hold id lies between the batch's least and greatest id (in the
# column's collation) one index probe answers for the whole batch; only otherwise is each id probed (a CASE
# evaluates the second sub-query only when it needs it).
_HELD_OR_REPLAYED = text(
    """
    SELECT CASE
        WHEN NOT EXISTS (
            SELECT FROM holds
            WHERE hold_id >= (SELECT min(id) FROM unnest(CAST(:ids AS text[])) AS id)
              AND hold_id <= (SELECT max(id) FROM unnest(CAST(:ids AS text[])) AS id)
        ) THEN false
        ELSE EXISTS (SELECT FROM holds WHERE hold_id = ANY(CAST(:ids AS text[])))
    END,
    EXISTS (SELECT FROM transfers WHERE transfer_id = :first)
    """
)
_COPY_TRANSFERS = (
    "COPY transfers (transfer_id, batch_id, debit_account, credit_account, amount_points, code, reference,"
    " co2e_grams, metadata_json, earned_at_us, posted_at_us, fingerprint, credit_balance_after) FROM STDIN"
)
_COPY_TRANSFER_LOTS = "COPY transfer_lots (transfer_id, side, position, lot_id, amount_points) FROM STDIN"
# Columns travel as comma-joined text (account numbers, days and numbers have no commas): one string parameter
# each, dumped by the driver in C, where a Python list is dumped element by element. Rows are locked in byte order
# of the account (`COLLATE "C"`, the columns' own collation, ADR 0107), the order Python's sorted() gives.
# The batch's lots go to one of two tables by their accounts' moved-through days (ADR 0137): nearly always all to
# recent_lots, whose key is day first, so the batch's new lots land in today's range of it.
_UPSERT_INTO = """
    INSERT INTO {table} (account, earned_on, expires_at_us, credited_points, remaining_points, expired_points)
    SELECT a, d, e, p, p, 0
    FROM unnest(string_to_array(:accounts, ','), CAST(string_to_array(:days, ',') AS date[]),
                CAST(string_to_array(:expires, ',') AS bigint[]),
                CAST(string_to_array(:points, ',') AS bigint[])) AS v(a, d, e, p)
    ORDER BY a COLLATE "C", e, d
    ON CONFLICT ({key}) DO UPDATE
    SET remaining_points = {table}.remaining_points + excluded.remaining_points,
        credited_points = {table}.credited_points + excluded.credited_points
    RETURNING lot_id, account, expires_at_us, earned_on
"""
_UPSERT_RECENT_LOTS = text(_UPSERT_INTO.format(table="recent_lots", key=", ".join(lot_key_columns(recent_lots))))
_UPSERT_LOTS = text(_UPSERT_INTO.format(table="lots", key=", ".join(lot_key_columns(lots))))
# Creates, locks (in account order) and credits the accounts in one statement; returns the new balances and each
# account's moved-through day, read under its lock (where its lots go). A new account's opened_after_seq is read once
# for the statement (an InitPlan), before the batch's journal rows.
_CREDIT_USERS = text(
    f"""
    INSERT INTO accounts (account, balance_points, held_points, created_at_us, opened_after_seq)
    SELECT n, p, 0, :now, {JOURNAL_LAST_SEQ["postgresql"]}
    FROM unnest(string_to_array(:names, ','), CAST(string_to_array(:points, ',') AS bigint[])) AS v(n, p)
    ORDER BY n COLLATE "C"
    ON CONFLICT (account) DO UPDATE SET balance_points = accounts.balance_points + excluded.balance_points
    RETURNING account, balance_points, lots_moved_through
    """
)


def taken_ids(conn: Connection, ids: list[str]) -> tuple[set[str], set[str]]:
    """Ids among `ids` already used by posted transfers, and by holds."""
    posted: set[str] = set()
    held: set[str] = set()
    for transfer_id, kind in conn.execute(_TAKEN_IDS, {"ids": _text_array(ids)}):
        (posted if kind == "t" else held).add(transfer_id)
    return posted, held


def held_or_replayed(conn: Connection, ids: list[str]) -> tuple[bool, bool]:
    """Whether a hold uses any of `ids`, and whether a posted transfer uses the first."""
    held, first_posted = conn.execute(_HELD_OR_REPLAYED, {"ids": _text_array(ids), "first": ids[0]}).one()
    return bool(held), bool(first_posted)


def _text_array(values: list[str]) -> str:
    """`values` as one PostgreSQL array literal: the driver dumps a list element by element in Python, one string
    in C. Each element is double-quoted; inside quotes only a quote and a backslash need escaping."""
    if not values:
        return "{}"
    joined = "".join(values)
    if '"' in joined or "\\" in joined:
        values = [value.replace("\\", "\\\\").replace('"', '\\"') for value in values]
    return '{"' + '","'.join(values) + '"}'


def _copy_texts(values: list[str]) -> list[str]:
    """Free-text values as COPY text. Nearly always none holds a character COPY escapes: that is checked once
    over the whole column, and each value is translated only when one does."""
    joined = "".join(values)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [value.translate(COPY_ESCAPES) for value in values]
    return values


def copy_transfers(
    conn: Connection, batch_id: int, credits: list[Credit], balances_after: list[int], now_us: int
) -> None:
    """The journal rows by COPY. An id another transaction commits meanwhile is a unique violation: the whole
    transaction is retried and then finds that id taken."""
    # Accounts are validated names and fingerprints hex: only the free-text fields need COPY's escapes.
    ids = _copy_texts([c.transfer_id for c in credits])
    references = _copy_texts([c.reference for c in credits])
    metadata = _copy_texts([c.metadata_json for c in credits])
    lines = [
        f"{transfer_id}\t{batch_id}\t{c.debit_account}\t{c.credit_account}\t{c.amount_points}\t{c.code}\t"
        f"{reference}\t{c.co2e_grams}\t{metadata_json}\t{c.earned_at_us}\t{now_us}\t{c.fingerprint}\t{balance_after}\n"
        for c, transfer_id, reference, metadata_json, balance_after in zip(
            credits, ids, references, metadata, balances_after, strict=True
        )
    ]
    with copy_into(conn, _COPY_TRANSFERS) as copy:
        copy.write("".join(lines))


def upsert_lots(conn: Connection, per_lot: dict[LotKey, int], moved_through: dict[str, date]) -> dict[LotKey, int]:
    """Adds each lot's credited points (creating lots on first use) in the table its account's moved-through day
    says; returns the lot ids by key. A late credit for a day already moved costs a second statement."""
    recent: list[LotKey] = []
    moved: list[LotKey] = []
    for key in sorted(per_lot):
        (recent if is_recent(key.earned_on, moved_through[key.account]) else moved).append(key)
    found: dict[LotKey, int] = {}
    if recent:
        found.update(_upsert_into(conn, _UPSERT_RECENT_LOTS, recent, per_lot))
    if moved:
        found.update(_upsert_into(conn, _UPSERT_LOTS, moved, per_lot))
    return found


def _upsert_into(conn: Connection, statement: Any, keys: list[LotKey], per_lot: dict[LotKey, int]) -> dict[LotKey, int]:
    rows = conn.execute(
        statement,
        {
            "accounts": ",".join([key.account for key in keys]),
            "expires": ",".join([str(key.expires_at_us) for key in keys]),
            "days": ",".join([key.earned_on.isoformat() for key in keys]),
            "points": ",".join([str(per_lot[key]) for key in keys]),
        },
    )
    new = tuple.__new__  # a LotKey per lot of the batch (docs/adr/0008-per-item-values-are-named-tuples.md)
    return {
        new(LotKey, (account, expires_at_us, earned_on)): lot_id
        for lot_id, account, expires_at_us, earned_on in rows.all()  # all(): fetched at once
    }


def copy_transfer_lots(conn: Connection, credits: list[Credit], lot_ids: list[int]) -> None:
    """Each credit's one lot record (credit side, position 0): its points went into the lot `lot_ids` names.
    Only for credits whose lot the transfer does not imply (not earns, ADR 0106)."""
    ids = _copy_texts([c.transfer_id for c in credits])
    lines = [
        f"{transfer_id}\tC\t0\t{lot_id}\t{c.amount_points}\n"
        for c, transfer_id, lot_id in zip(credits, ids, lot_ids, strict=True)
    ]
    with copy_into(conn, _COPY_TRANSFER_LOTS) as copy:
        copy.write("".join(lines))


def credit_users(conn: Connection, per_account: dict[str, int], now_us: int) -> tuple[dict[str, int], dict[str, date]]:
    """Adds each account's points (creating accounts on first use); returns the balances after the batch and each
    account's moved-through day."""
    names = sorted(per_account)
    points = ",".join([str(per_account[name]) for name in names])
    rows = conn.execute(_CREDIT_USERS, {"names": ",".join(names), "points": points, "now": now_us}).all()
    balances = {account: balance for account, balance, _ in rows}
    return balances, {account: moved_through for account, _, moved_through in rows}
