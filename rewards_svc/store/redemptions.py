"""Queries on redemptions: the per-account usage that limits count, and the guarded state moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, text, update

from rewards_svc.domain.limits import Usage
from rewards_svc.domain.redemption import COUNTED_STATES, Redemption, RedemptionState
from rewards_svc.store import vouchers
from rewards_svc.store.tables import insert_if_absent, redemption_table
from service_kit.db import naive_utc


def usage(
    connection: Connection, account_number: str, reward_id: str, day_start: datetime, month_start: datetime
) -> Usage:
    counted = and_(
        redemption_table.c.account_number == account_number,
        redemption_table.c.reward_id == reward_id,
        redemption_table.c.state.in_(COUNTED_STATES),
    )
    units = redemption_table.c.limit_units

    def total(*conditions: Any) -> Any:
        return (
            func.coalesce(func.sum(units).filter(*conditions), 0) if conditions else func.coalesce(func.sum(units), 0)
        )

    row = connection.execute(
        select(
            total(redemption_table.c.created_at >= day_start).label("today"),
            total(redemption_table.c.created_at >= month_start).label("this_month"),
            total().label("lifetime"),
        ).where(counted)
    ).one()
    return Usage(today=int(row.today), this_month=int(row.this_month), lifetime=int(row.lifetime))


# Built once: every redemption runs these.
_INSERT = insert_if_absent(redemption_table, ["request_id"], redemption_table.c.redemption_id)
_LOCK_STATE = (
    select(redemption_table.c.state)
    .where(redemption_table.c.redemption_id == bindparam("redemption_id"))
    .with_for_update()
)
_SET_STATE = (
    update(redemption_table)
    .where(
        and_(
            redemption_table.c.redemption_id == bindparam("b_redemption_id"),
            redemption_table.c.state == bindparam("from_state"),
        )
    )
    .values(state=bindparam("to_state"), failure_reason=bindparam("reason"), updated_at=bindparam("now"))
)


def _row(redemption: Redemption, limit_units: int) -> dict[str, Any]:
    return {
        "redemption_id": redemption.redemption_id,
        "request_id": redemption.request_id,
        "account_number": redemption.account_number,
        "reward_id": redemption.reward_id,
        "quantity": redemption.quantity,
        "region_code": redemption.region_code,
        "price_points": redemption.price_points,
        "amount_points": redemption.amount_points,
        "limit_units": limit_units,
        "state": redemption.state,
        "failure_reason": redemption.failure_reason,
        "hold_id": redemption.hold_id,
        "hold_timeout_s": redemption.hold_timeout_s,
        "hold_commit_account": redemption.hold_commit_account,
        "created_at": redemption.created_at,
        "updated_at": redemption.created_at,
    }


def insert(connection: Connection, redemption: Redemption, limit_units: int) -> bool:
    """False when a redemption with this request id exists (a retry, or a race with one): nothing was written."""
    return connection.execute(_INSERT[connection.dialect.name], _row(redemption, limit_units)).first() is not None


# The group statements on PostgreSQL have one text whatever the group's size (arrays, not an IN list or a multi-row
# VALUES): psycopg prepares them once per connection, where every new size was a new text to convert, parse and plan
# (docs/adr/0306). SQLite runs the general statements.
_PG_INSERT_MANY = text(
    """
    INSERT INTO redemptions (redemption_id, request_id, account_number, reward_id, quantity, region_code, price_points,
                             amount_points, limit_units, state, failure_reason, hold_id, hold_timeout_s,
                             hold_commit_account, created_at, updated_at)
    SELECT v.redemption_id, v.request_id, v.account_number, :reward_id, v.quantity, v.region_code, v.price_points,
           v.amount_points, v.limit_units, v.state, v.failure_reason, v.hold_id, v.hold_timeout_s,
           v.hold_commit_account, v.created_at, v.created_at
    FROM unnest(CAST(:redemption_ids AS text[]), CAST(:request_ids AS text[]), CAST(:account_numbers AS text[]),
                CAST(:quantities AS integer[]), CAST(:region_codes AS text[]), CAST(:price_points AS bigint[]),
                CAST(:amount_points AS bigint[]), CAST(:limit_units AS integer[]), CAST(:states AS text[]),
                CAST(:failure_reasons AS text[]), CAST(:hold_ids AS text[]), CAST(:hold_timeouts_s AS integer[]),
                CAST(:hold_commit_accounts AS text[]), CAST(:created_ats AS timestamp[]))
         WITH ORDINALITY AS v(redemption_id, request_id, account_number, quantity, region_code, price_points,
                              amount_points, limit_units, state, failure_reason, hold_id, hold_timeout_s,
                              hold_commit_account, created_at, position)
    ORDER BY v.position
    ON CONFLICT (request_id) DO NOTHING
    RETURNING redemption_id
    """
)
_PG_TAKEN_REQUEST_IDS = text("SELECT request_id FROM redemptions WHERE request_id = ANY(CAST(:request_ids AS text[]))")
_PG_COMPLETE_MANY = text(
    """
    UPDATE redemptions SET state = :to_state, updated_at = :now
    WHERE redemption_id = ANY(CAST(:redemption_ids AS text[])) AND state = :from_state
    RETURNING redemption_id
    """
)


def insert_many(connection: Connection, items: Sequence[tuple[Redemption, int]]) -> set[str]:
    """Inserts (redemption, limit units) pairs of one reward in one statement, in request id order (concurrent groups
    meet the same request ids in the same order); returns the ids of those written, leaving out any whose request id
    was taken."""
    if not items:
        return set()
    ordered = sorted(items, key=lambda item: item[0].request_id)
    if connection.dialect.name != "postgresql":
        rows = [_row(redemption, units) for redemption, units in ordered]
        return set(connection.execute(_INSERT[connection.dialect.name], rows).scalars())
    redemptions = [redemption for redemption, _ in ordered]
    (reward_id,) = {redemption.reward_id for redemption in redemptions}
    columns = {
        "reward_id": reward_id,
        "redemption_ids": [r.redemption_id for r in redemptions],
        "request_ids": [r.request_id for r in redemptions],
        "account_numbers": [r.account_number for r in redemptions],
        "quantities": [r.quantity for r in redemptions],
        "region_codes": [r.region_code for r in redemptions],
        "price_points": [r.price_points for r in redemptions],
        "amount_points": [r.amount_points for r in redemptions],
        "limit_units": [units for _, units in ordered],
        "states": [r.state for r in redemptions],
        "failure_reasons": [r.failure_reason for r in redemptions],
        "hold_ids": [r.hold_id for r in redemptions],
        "hold_timeouts_s": [r.hold_timeout_s for r in redemptions],
        "hold_commit_accounts": [r.hold_commit_account for r in redemptions],
        "created_ats": [naive_utc(r.created_at) for r in redemptions],
    }
    return set(connection.execute(_PG_INSERT_MANY, columns).scalars())


_TAKEN_REQUEST_IDS = select(redemption_table.c.request_id).where(
    redemption_table.c.request_id.in_(bindparam("request_ids", expanding=True))
)


def taken_request_ids(connection: Connection, request_ids: Sequence[str]) -> set[str]:
    """Which of these request ids have a redemption already (one statement for a whole group)."""
    statement = _PG_TAKEN_REQUEST_IDS if connection.dialect.name == "postgresql" else _TAKEN_REQUEST_IDS
    return set(connection.execute(statement, {"request_ids": list(request_ids)}).scalars())


_COMPLETE_MANY = (
    update(redemption_table)
    .where(
        and_(
            redemption_table.c.redemption_id.in_(bindparam("redemption_ids", expanding=True)),
            redemption_table.c.state == bindparam("from_state"),
        )
    )
    .values(state=bindparam("to_state"), updated_at=bindparam("now"))
    .returning(redemption_table.c.redemption_id)
)


def complete_many(connection: Connection, redemption_ids: Sequence[str], now: datetime) -> set[str]:
    """PENDING → COMPLETED for many redemptions in one statement; returns those moved (the rest were moved first by
    another worker)."""
    values = {
        "redemption_ids": sorted(redemption_ids),
        "from_state": RedemptionState.PENDING,
        "to_state": RedemptionState.COMPLETED,
    }
    if connection.dialect.name == "postgresql":
        return set(connection.execute(_PG_COMPLETE_MANY, {**values, "now": naive_utc(now)}).scalars())
    return set(connection.execute(_COMPLETE_MANY, {**values, "now": now}).scalars())


def _from_row(row: Any, items: tuple[Any, ...]) -> Redemption:
    return Redemption(
        redemption_id=row.redemption_id,
        request_id=row.request_id,
        account_number=row.account_number,
        reward_id=row.reward_id,
        quantity=row.quantity,
        region_code=row.region_code,
        price_points=row.price_points,
        amount_points=row.amount_points,
        state=row.state,
        failure_reason=row.failure_reason,
        hold_id=row.hold_id,
        created_at=row.created_at,
        vouchers=items,
        hold_timeout_s=row.hold_timeout_s,
        hold_commit_account=row.hold_commit_account,
    )


def get(connection: Connection, *, redemption_id: str = "", request_id: str = "") -> Redemption | None:
    """A redemption with its vouchers, by either id."""
    column = redemption_table.c.redemption_id if redemption_id else redemption_table.c.request_id
    row = connection.execute(select(redemption_table).where(column == (redemption_id or request_id))).first()
    if row is None:
        return None
    return _from_row(row, tuple(vouchers.of_redemption(connection, row.redemption_id)))


def lock_state(connection: Connection, redemption_id: str) -> str | None:
    """The state of a redemption, its row locked until the transaction ends (no one moves it meanwhile)."""
    return connection.execute(_LOCK_STATE, {"redemption_id": redemption_id}).scalar()


def set_state(
    connection: Connection, redemption_id: str, from_state: str, to_state: str, now: datetime, reason: str = ""
) -> bool:
    """Moves a redemption from one state to the next; False when another worker moved it first."""
    values = {"b_redemption_id": redemption_id, "from_state": from_state, "to_state": to_state, "reason": reason}
    return connection.execute(_SET_STATE, {**values, "now": now}).rowcount == 1


def ids_in_state(connection: Connection, state: str, updated_before: datetime, limit: int) -> list[str]:
    query = (
        select(redemption_table.c.redemption_id)
        .where(and_(redemption_table.c.state == state, redemption_table.c.updated_at <= updated_before))
        .order_by(redemption_table.c.created_at)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


def watch_hold(connection: Connection, redemption_id: str, until: datetime | None) -> None:
    """Until `until`, recovery looks for this redemption's hold landing late (None: no longer)."""
    connection.execute(
        update(redemption_table).where(redemption_table.c.redemption_id == redemption_id).values(hold_watch_until=until)
    )


@dataclass(frozen=True)
class WatchedHold:
    redemption_id: str
    hold_id: str
    until: datetime
    # Not empty: the hold commits as it lands, so a late one is refunded rather than released (docs/adr/0303).
    hold_commit_account: str
    amount_points: int


def watched_holds(connection: Connection, limit: int) -> list[WatchedHold]:
    """Unwound redemptions whose hold may still land, the longest watched first."""
    query = (
        select(
            redemption_table.c.redemption_id,
            redemption_table.c.hold_id,
            redemption_table.c.hold_watch_until,
            redemption_table.c.hold_commit_account,
            redemption_table.c.amount_points,
        )
        .where(redemption_table.c.hold_watch_until.is_not(None))
        .order_by(redemption_table.c.hold_watch_until)
        .limit(limit)
    )
    return [WatchedHold(row[0], row[1], row[2], row[3], row[4]) for row in connection.execute(query)]
