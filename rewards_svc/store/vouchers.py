"""Queries on vouchers: issue, look up, list, and the guarded state moves (use, cancel, expire)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select, text, update

from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.domain.vouchers import Voucher, VoucherState
from rewards_svc.store.tables import insert_if_absent, redemption_table, voucher_table
from service_kit.db import naive_utc


def from_row(row: Any) -> Voucher:
    return Voucher(
        code=row.code,
        redemption_id=row.redemption_id,
        seq=row.seq,
        reward_id=row.reward_id,
        account_number=row.account_number,
        units=row.units,
        price_points=row.price_points,
        state=row.state,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        terms=row.terms,
    )


_INSERT = insert_if_absent(voucher_table, ["redemption_id", "seq"], voucher_table.c.voucher_id)


# On PostgreSQL one text whatever the number of vouchers (arrays, not a multi-row VALUES): prepared once per
# connection instead of converted, parsed and planned again for every new count (docs/adr/0306).
_PG_INSERT_NEW = text(
    """
    INSERT INTO vouchers (code, redemption_id, seq, reward_id, account_number, units, price_points, state, issued_at,
                          expires_at, used_at, merchant_id, cancelled_at, refund_id, terms)
    SELECT v.code, v.redemption_id, v.seq, v.reward_id, v.account_number, v.units, v.price_points, v.state,
           v.issued_at, v.expires_at, NULL, '', NULL, '', v.terms
    FROM unnest(CAST(:codes AS text[]), CAST(:redemption_ids AS text[]), CAST(:seqs AS integer[]),
                CAST(:reward_ids AS text[]), CAST(:account_numbers AS text[]), CAST(:units AS integer[]),
                CAST(:price_points AS bigint[]), CAST(:states AS text[]), CAST(:issued_ats AS timestamp[]),
                CAST(:expires_ats AS timestamp[]), CAST(:terms AS text[]))
         WITH ORDINALITY AS v(code, redemption_id, seq, reward_id, account_number, units, price_points, state,
                              issued_at, expires_at, terms, position)
    ORDER BY v.position
    ON CONFLICT (redemption_id, seq) DO NOTHING
    RETURNING voucher_id
    """
)


def insert_new(connection: Connection, items: Sequence[Voucher]) -> int:
    """Issues vouchers whose (redemption, seq) is not issued yet; returns how many were added."""
    if not items:
        return 0
    if connection.dialect.name == "postgresql":
        columns = {
            "codes": [item.code for item in items],
            "redemption_ids": [item.redemption_id for item in items],
            "seqs": [item.seq for item in items],
            "reward_ids": [item.reward_id for item in items],
            "account_numbers": [item.account_number for item in items],
            "units": [item.units for item in items],
            "price_points": [item.price_points for item in items],
            "states": [item.state for item in items],
            "issued_ats": [naive_utc(item.issued_at) for item in items],
            "expires_ats": [naive_utc(item.expires_at) for item in items],
            "terms": [item.terms for item in items],
        }
        return len(connection.execute(_PG_INSERT_NEW, columns).all())
    rows = [
        {
            "code": item.code,
            "redemption_id": item.redemption_id,
            "seq": item.seq,
            "reward_id": item.reward_id,
            "account_number": item.account_number,
            "units": item.units,
            "price_points": item.price_points,
            "state": item.state,
            "issued_at": item.issued_at,
            "expires_at": item.expires_at,
            "used_at": None,
            "merchant_id": "",
            "cancelled_at": None,
            "refund_id": "",
            "terms": item.terms,
        }
        for item in items
    ]
    # One cached statement run with many parameter sets: SQLAlchemy sends it as one multi-row INSERT
    # ("insertmanyvalues"); a multi-row .values() would be compiled anew every time.
    return len(connection.execute(_INSERT[connection.dialect.name], rows).all())


def of_redemption(connection: Connection, redemption_id: str) -> list[Voucher]:
    query = select(voucher_table).where(voucher_table.c.redemption_id == redemption_id).order_by(voucher_table.c.seq)
    return [from_row(row) for row in connection.execute(query)]


@dataclass(frozen=True)
class StoredVoucher:
    """A voucher with what its use and cancel need from its row and its redemption's."""

    voucher: Voucher
    redemption_state: str
    hold_id: str
    refund_id: str
    refund_reason: str


def get(connection: Connection, code: str, *, lock: bool = False) -> StoredVoucher | None:
    """The voucher, its redemption's state and hold id, and the voucher's refund id and reason."""
    query = (
        select(voucher_table, redemption_table.c.state.label("redemption_state"), redemption_table.c.hold_id)
        .join(redemption_table, redemption_table.c.redemption_id == voucher_table.c.redemption_id)
        .where(voucher_table.c.code == code)
    )
    if lock:
        query = query.with_for_update(of=voucher_table)
    row = connection.execute(query).first()
    if row is None:
        return None
    return StoredVoucher(
        voucher=from_row(row),
        redemption_state=row.redemption_state,
        hold_id=row.hold_id,
        refund_id=row.refund_id,
        refund_reason=row.refund_reason,
    )


@dataclass(frozen=True)
class ListedVoucher:
    """A voucher in a listing, with the row id the next page starts after."""

    voucher_id: int
    voucher: Voucher


def list_page(
    connection: Connection, account_number: str, states: Sequence[str], after_id: int, limit: int
) -> list[ListedVoucher]:
    """Vouchers of completed redemptions, newest first."""
    query = (
        select(voucher_table)
        .join(redemption_table, redemption_table.c.redemption_id == voucher_table.c.redemption_id)
        .where(
            and_(
                voucher_table.c.account_number == account_number,
                redemption_table.c.state == RedemptionState.COMPLETED,
            )
        )
        .order_by(voucher_table.c.voucher_id.desc())
        .limit(limit)
    )
    if states:
        query = query.where(voucher_table.c.state.in_(states))
    if after_id:
        query = query.where(voucher_table.c.voucher_id < after_id)
    return [ListedVoucher(voucher_id=row.voucher_id, voucher=from_row(row)) for row in connection.execute(query)]


def set_state(connection: Connection, code: str, from_states: Sequence[str], to_state: str, **values: Any) -> bool:
    result = connection.execute(
        update(voucher_table)
        .where(and_(voucher_table.c.code == code, voucher_table.c.state.in_(from_states)))
        .values(state=to_state, **values)
    )
    return result.rowcount == 1


def cancel_of_redemption(connection: Connection, redemption_id: str, now: datetime) -> None:
    connection.execute(
        update(voucher_table)
        .where(and_(voucher_table.c.redemption_id == redemption_id, voucher_table.c.state == VoucherState.ISSUED))
        .values(state=VoucherState.CANCELLED, cancelled_at=now)
    )


def expire(connection: Connection, now: datetime, *, account_number: str = "", code: str = "") -> int:
    """Marks ISSUED vouchers past their expiry EXPIRED (all, one account's, or one code)."""
    condition = and_(voucher_table.c.state == VoucherState.ISSUED, voucher_table.c.expires_at <= now)
    if account_number:
        condition = and_(condition, voucher_table.c.account_number == account_number)
    if code:
        condition = and_(condition, voucher_table.c.code == code)
    return connection.execute(update(voucher_table).where(condition).values(state=VoucherState.EXPIRED)).rowcount or 0


def codes_cancelling(connection: Connection, cancelled_before: datetime, limit: int) -> list[str]:
    """CANCELLING vouchers whose cancel began before `cancelled_before`: younger ones may still have their live
    request's refund on the way."""
    query = (
        select(voucher_table.c.code)
        .where(and_(voucher_table.c.state == VoucherState.CANCELLING, voucher_table.c.cancelled_at <= cancelled_before))
        .order_by(voucher_table.c.voucher_id)
    ).limit(limit)
    return list(connection.execute(query).scalars())
