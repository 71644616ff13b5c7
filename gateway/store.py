"""Tables and queries of gateway (SQLAlchemy 2.x): the only module that knows SQL.

Times are stored as naive UTC (SQLite keeps no zone) and come back aware.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    insert,
    or_,
    select,
    update,
)

from gateway.domain import (
    ANYWHERE_FINISHED,
    FINISHED,
    Anywhere,
    AnywhereRequest,
    AnywhereState,
    Decision,
    HeldLot,
    State,
    Transfer,
    TransferRequest,
)

metadata = MetaData()

transfers = Table(
    "xr_transfers",
    metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("caller_id", String(64), nullable=False),
    Column("from_account", String(16), nullable=False, index=True),
    Column("to_account", String(16), nullable=False, index=True),
    Column("amount_points", BigInteger, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("decision", String(8), nullable=False),
    Column("failure_reason", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("hold_timeout_ms", BigInteger, nullable=False),
    Column("hold_expires_at", DateTime),
    Column("held_lots", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime),
    # Whoever drives a transfer (a request thread or the recovery loop) leases it, so two never race a step.
    Column("lease_until", DateTime),
    Column("carry_lots", Text),
)

anywhere = Table(
    "xr_redeem_anywhere",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("caller_id", String(64), nullable=False),
    Column("source_account", String(16), nullable=False),
    Column("target_account", String(16), nullable=False),
    Column("reward_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("failure_reason", String(64), nullable=False),
    Column("redemption_id", String(64), nullable=False),
    Column("voucher_codes", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime),
    Column("lease_until", DateTime),
)


def _naive(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _lots_json(lots: Sequence[HeldLot]) -> str:
    return json.dumps(
        [
            {
                "lot_id": lot.lot_id,
                "earned_on": lot.earned_on,
                "expires_at": lot.expires_at.isoformat(),
                "amount_points": lot.amount_points,
            }
            for lot in lots
        ]
    )


def _lots(raw: str) -> list[HeldLot]:
    return [
        HeldLot(item["lot_id"], item["earned_on"], datetime.fromisoformat(item["expires_at"]), item["amount_points"])
        for item in json.loads(raw or "[]")
    ]


def _transfer(row: Row[Any]) -> Transfer:
    created_at = _aware(row.created_at)
    expires_at = _aware(row.expires_at)
    assert created_at is not None and expires_at is not None
    return Transfer(
        request=TransferRequest(row.transfer_id, row.from_account, row.to_account, row.amount_points),
        caller_id=row.caller_id,
        state=State(row.state),
        decision=Decision(row.decision),
        created_at=created_at,
        expires_at=expires_at,
        hold_timeout_ms=row.hold_timeout_ms,
        failure_reason=row.failure_reason,
        finished_at=_aware(row.finished_at),
        hold_expires_at=_aware(row.hold_expires_at),
        held_lots=_lots(row.held_lots),
        attempts=row.attempts,
        next_attempt_at=_aware(row.next_attempt_at),
        carry_lots=_lots(row.carry_lots),
    )


def insert_transfer(conn: Connection, transfer: Transfer, lease_until: datetime) -> None:
    """Raises IntegrityError when the id exists (the caller re-reads and compares fingerprints)."""
    conn.execute(
        insert(transfers).values(
            transfer_id=transfer.transfer_id,
            fingerprint=transfer.request.fingerprint(),
            caller_id=transfer.caller_id,
            from_account=transfer.request.from_account,
            to_account=transfer.request.to_account,
            amount_points=transfer.request.amount_points,
            state=transfer.state.value,
            decision=transfer.decision.value,
            failure_reason=transfer.failure_reason,
            created_at=_naive(transfer.created_at),
            expires_at=_naive(transfer.expires_at),
            hold_timeout_ms=transfer.hold_timeout_ms,
            held_lots="[]",
            attempts=0,
            next_attempt_at=_naive(transfer.next_attempt_at),
            lease_until=_naive(lease_until),
            carry_lots=_lots_json(transfer.carry_lots),
        )
    )


def fingerprint_of(conn: Connection, transfer_id: str) -> str | None:
    return conn.execute(select(transfers.c.fingerprint).where(transfers.c.transfer_id == transfer_id)).scalar()


def get_transfer(conn: Connection, transfer_id: str) -> Transfer | None:
    row = conn.execute(select(transfers).where(transfers.c.transfer_id == transfer_id)).first()
    return None if row is None else _transfer(row)


def advance(
    conn: Connection,
    transfer_id: str,
    expected: State,
    state: State,
    *,
    decision: Decision | None = None,
    failure_reason: str | None = None,
    finished_at: datetime | None = None,
    hold_expires_at: datetime | None = None,
    held_lots: Sequence[HeldLot] | None = None,
) -> bool:
    """Moves a transfer from `expected` to `state` (compare-and-set); False if someone else moved it first."""
    values: dict[str, Any] = {"state": state.value, "attempts": 0, "next_attempt_at": None}
    if decision is not None:
        values["decision"] = decision.value
    if failure_reason is not None:
        values["failure_reason"] = failure_reason
    if finished_at is not None:
        values["finished_at"] = _naive(finished_at)
    if hold_expires_at is not None:
        values["hold_expires_at"] = _naive(hold_expires_at)
    if held_lots is not None:
        values["held_lots"] = _lots_json(held_lots)
    result = conn.execute(
        update(transfers)
        .where(transfers.c.transfer_id == transfer_id, transfers.c.state == expected.value)
        .values(**values)
    )
    return result.rowcount == 1


def decide(
    conn: Connection,
    transfer_id: str,
    state: State,
    expected: Decision,
    decision: Decision,
    failure_reason: str = "",
) -> bool:
    """Records a durable decision (compare-and-set on state and the previous decision)."""
    result = conn.execute(
        update(transfers)
        .where(
            transfers.c.transfer_id == transfer_id,
            transfers.c.state == state.value,
            transfers.c.decision == expected.value,
        )
        .values(decision=decision.value, failure_reason=failure_reason)
    )
    return result.rowcount == 1


def _key(table: Table) -> Column[Any]:
    return table.c.transfer_id if table is transfers else table.c.request_id


def claim(conn: Connection, key: str, now: datetime, lease_until: datetime, table: Table = transfers) -> bool:
    result = conn.execute(
        update(table)
        .where(_key(table) == key, or_(table.c.lease_until.is_(None), table.c.lease_until < _naive(now)))
        .values(lease_until=_naive(lease_until))
    )
    return result.rowcount == 1


def renew_lease(conn: Connection, key: str, lease_until: datetime, table: Table = transfers) -> None:
    conn.execute(update(table).where(_key(table) == key).values(lease_until=_naive(lease_until)))


def release_lease(conn: Connection, key: str, table: Table = transfers) -> None:
    conn.execute(update(table).where(_key(table) == key).values(lease_until=None))


def postpone(conn: Connection, key: str, next_attempt_at: datetime, table: Table = transfers) -> None:
    """A step could not run now (a region is down): try again later, counting attempts for backoff."""
    conn.execute(
        update(table)
        .where(_key(table) == key)
        .values(next_attempt_at=_naive(next_attempt_at), attempts=table.c.attempts + 1, lease_until=None)
    )


def due_unfinished(conn: Connection, now: datetime, limit: int, table: Table = transfers) -> list[str]:
    moment = _naive(now)
    finished = FINISHED if table is transfers else ANYWHERE_FINISHED
    query = (
        select(_key(table))
        .where(
            table.c.state.not_in([state.value for state in finished]),
            or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= moment),
            or_(table.c.lease_until.is_(None), table.c.lease_until < moment),
        )
        .order_by(table.c.created_at)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def count_unfinished(conn: Connection) -> int:
    query = select(transfers.c.transfer_id).where(transfers.c.state.not_in([state.value for state in FINISHED]))
    return len(conn.execute(query).all())


def list_transfers(
    conn: Connection, account_number: str, state: State | None, page_size: int, after_id: str
) -> list[Transfer]:
    conditions = [transfers.c.transfer_id > after_id]
    if account_number:
        conditions.append(or_(transfers.c.from_account == account_number, transfers.c.to_account == account_number))
    if state is not None:
        conditions.append(transfers.c.state == state.value)
    query = select(transfers).where(and_(*conditions)).order_by(transfers.c.transfer_id).limit(page_size)
    return [_transfer(row) for row in conn.execute(query)]


# --- redeem anywhere ---------------------------------------------------------------------------------------------


def insert_anywhere(conn: Connection, item: Anywhere, lease_until: datetime) -> None:
    """Raises IntegrityError when the request id exists (the caller re-reads and compares fingerprints)."""
    conn.execute(
        insert(anywhere).values(
            request_id=item.request.request_id,
            fingerprint=item.request.fingerprint(),
            caller_id=item.caller_id,
            source_account=item.request.source_account,
            target_account=item.request.target_account,
            reward_id=item.request.reward_id,
            quantity=item.request.quantity,
            amount_points=item.amount_points,
            state=item.state.value,
            failure_reason="",
            redemption_id="",
            voucher_codes="[]",
            created_at=_naive(item.created_at),
            attempts=0,
            lease_until=_naive(lease_until),
        )
    )


def get_anywhere(conn: Connection, request_id: str) -> Anywhere | None:
    row = conn.execute(select(anywhere).where(anywhere.c.request_id == request_id)).first()
    if row is None:
        return None
    created_at = _aware(row.created_at)
    assert created_at is not None
    return Anywhere(
        request=AnywhereRequest(row.request_id, row.source_account, row.target_account, row.reward_id, row.quantity),
        caller_id=row.caller_id,
        amount_points=row.amount_points,
        state=AnywhereState(row.state),
        created_at=created_at,
        failure_reason=row.failure_reason,
        redemption_id=row.redemption_id,
        voucher_codes=list(json.loads(row.voucher_codes)),
        finished_at=_aware(row.finished_at),
        attempts=row.attempts,
    )


def advance_anywhere(
    conn: Connection,
    request_id: str,
    expected: AnywhereState,
    state: AnywhereState,
    *,
    failure_reason: str | None = None,
    redemption_id: str | None = None,
    voucher_codes: Sequence[str] | None = None,
    finished_at: datetime | None = None,
) -> bool:
    """Compare-and-set on the state; False if another driver moved it first."""
    values: dict[str, Any] = {"state": state.value, "attempts": 0, "next_attempt_at": None}
    if failure_reason is not None:
        values["failure_reason"] = failure_reason[:64]
    if redemption_id is not None:
        values["redemption_id"] = redemption_id
    if voucher_codes is not None:
        values["voucher_codes"] = json.dumps(list(voucher_codes))
    if finished_at is not None:
        values["finished_at"] = _naive(finished_at)
    result = conn.execute(
        update(anywhere).where(anywhere.c.request_id == request_id, anywhere.c.state == expected.value).values(**values)
    )
    return result.rowcount == 1
