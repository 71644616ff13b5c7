"""Tables and queries of rewards_svc (SQLAlchemy 2.x Core): the only module that knows SQL.

Every function takes an open Connection; the service layer owns the transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from rewards_svc.domain import (
    COUNTED_STATES,
    CharityProject,
    Redemption,
    Reward,
    Usage,
    Voucher,
    VoucherState,
)
from service_kit.db import UtcDateTime

metadata = MetaData()


rewards = Table(
    "rewards",
    metadata,
    Column("reward_id", String(64), primary_key=True),
    Column("name_en", String(200), nullable=False),
    Column("name_zh", String(200), nullable=False),
    Column("category", String(32), nullable=False),
    Column("price_points", BigInteger, nullable=False),
    Column("face_value_cents", BigInteger, nullable=False),
    Column("provider", String(200), nullable=False),
    Column("region_codes", String(700), nullable=False),  # comma-separated; empty means nationwide
    Column("stock", BigInteger, nullable=False),
    Column("limit_per_day", Integer, nullable=False),
    Column("limit_per_month", Integer, nullable=False),
    Column("limit_lifetime", Integer, nullable=False),
    Column("available_from", UtcDateTime, nullable=True),
    Column("available_until", UtcDateTime, nullable=True),
    Column("voucher_lifetime_days", Integer, nullable=False),
    Column("divisible", Boolean, nullable=False),
    Column("retired", Boolean, nullable=False),
    Column("terms", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("redemption_id", String(36), primary_key=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("account_number", String(16), nullable=False),
    Column("reward_id", String(64), ForeignKey("rewards.reward_id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("price_points", BigInteger, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    Column("limit_units", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("failure_reason", String(64), nullable=False),
    Column("hold_id", String(80), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_redemptions_account_reward", "account_number", "reward_id", "created_at"),
    Index("ix_redemptions_state", "state"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("voucher_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("redemption_id", String(36), ForeignKey("redemptions.redemption_id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("reward_id", String(64), nullable=False),
    Column("account_number", String(16), nullable=False),
    Column("units", Integer, nullable=False),
    Column("price_points", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("merchant_id", String(128), nullable=False),
    Column("cancelled_at", UtcDateTime, nullable=True),
    Column("refund_id", String(128), nullable=False),
    Column("terms", Text, nullable=False),
    Index("ux_vouchers_redemption_seq", "redemption_id", "seq", unique=True),
    Index("ix_vouchers_account", "account_number", "voucher_id"),
    Index("ix_vouchers_state", "state"),
)

charity_projects = Table(
    "charity_projects",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("name_en", String(200), nullable=False),
    Column("name_zh", String(200), nullable=False),
    Column("points_per_unit", BigInteger, nullable=False),
    Column("impact_unit", String(32), nullable=False),
)

charity_impact = Table(
    "charity_impact",
    metadata,
    Column("project_id", String(64), ForeignKey("charity_projects.project_id"), primary_key=True),
    Column("region_code", String(6), primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("donated_points", BigInteger, nullable=False),
)

donations = Table(
    "donations",
    metadata,
    Column("donation_id", String(36), primary_key=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("account_number", String(16), nullable=False),
    Column("project_id", String(64), ForeignKey("charity_projects.project_id"), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("failure_reason", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_donations_state", "state"),
)

# Idempotency of the operations that have no table of their own keyed by request id.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("operation", String(32), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("result_ref", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


def _insert_ignore(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Inserts rows whose key is not there yet; returns how many were added."""
    if not rows:
        return 0
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(table).values(list(rows)).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 for a multi-row VALUES insert.
    return len(connection.execute(statement.returning(*table.primary_key.columns)).all())


# --- rewards -------------------------------------------------------------------------------------------------------


def _reward_row(reward: Reward, now: datetime) -> dict[str, Any]:
    return {
        "reward_id": reward.reward_id,
        "name_en": reward.name_en,
        "name_zh": reward.name_zh,
        "category": reward.category,
        "price_points": reward.price_points,
        "face_value_cents": reward.face_value_cents,
        "provider": reward.provider,
        "region_codes": ",".join(reward.region_codes),
        "stock": reward.stock,
        "limit_per_day": reward.limit_per_day,
        "limit_per_month": reward.limit_per_month,
        "limit_lifetime": reward.limit_lifetime,
        "available_from": reward.available_from,
        "available_until": reward.available_until,
        "voucher_lifetime_days": reward.voucher_lifetime_days,
        "divisible": reward.divisible,
        "retired": reward.retired,
        "terms": reward.terms,
        "updated_at": now,
    }


def _reward(row: Any) -> Reward:
    return Reward(
        reward_id=row.reward_id,
        name_en=row.name_en,
        name_zh=row.name_zh,
        category=row.category,
        price_points=row.price_points,
        face_value_cents=row.face_value_cents,
        provider=row.provider,
        region_codes=tuple(code for code in row.region_codes.split(",") if code),
        stock=row.stock,
        limit_per_day=row.limit_per_day,
        limit_per_month=row.limit_per_month,
        limit_lifetime=row.limit_lifetime,
        available_from=row.available_from,
        available_until=row.available_until,
        voucher_lifetime_days=row.voucher_lifetime_days,
        divisible=row.divisible,
        retired=row.retired,
        terms=row.terms,
    )


def add_missing_rewards(connection: Connection, items: Sequence[Reward], now: datetime) -> int:
    return _insert_ignore(connection, rewards, [_reward_row(reward, now) for reward in items])


def insert_reward(connection: Connection, reward: Reward, now: datetime) -> bool:
    """False when the reward id is taken."""
    return _insert_ignore(connection, rewards, [_reward_row(reward, now)]) == 1


def save_reward(connection: Connection, reward: Reward, now: datetime) -> None:
    row = _reward_row(reward, now)
    connection.execute(update(rewards).where(rewards.c.reward_id == reward.reward_id).values(row))


def get_reward(connection: Connection, reward_id: str, *, lock: bool = False) -> Reward | None:
    query = select(rewards).where(rewards.c.reward_id == reward_id)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    return None if row is None else _reward(row)


def list_rewards(
    connection: Connection, *, category: str = "", include_retired: bool = False, after_id: str = "", limit: int = 0
) -> list[Reward]:
    query = select(rewards).order_by(rewards.c.reward_id)
    if category:
        query = query.where(rewards.c.category == category)
    if not include_retired:
        query = query.where(rewards.c.retired.is_(False))
    if after_id:
        query = query.where(rewards.c.reward_id > after_id)
    if limit:
        query = query.limit(limit)
    return [_reward(row) for row in connection.execute(query)]


def change_stock(connection: Connection, reward_id: str, delta: int) -> None:
    """Adds delta to a counted stock; unlimited stock (-1) stays unlimited."""
    connection.execute(
        update(rewards)
        .where(and_(rewards.c.reward_id == reward_id, rewards.c.stock != -1))
        .values(stock=rewards.c.stock + delta)
    )


# --- redemptions ---------------------------------------------------------------------------------------------------


def usage(
    connection: Connection, account_number: str, reward_id: str, day_start: datetime, month_start: datetime
) -> Usage:
    counted = and_(
        redemptions.c.account_number == account_number,
        redemptions.c.reward_id == reward_id,
        redemptions.c.state.in_(COUNTED_STATES),
    )
    units = redemptions.c.limit_units

    def total(*conditions: Any) -> Any:
        return (
            func.coalesce(func.sum(units).filter(*conditions), 0) if conditions else func.coalesce(func.sum(units), 0)
        )

    row = connection.execute(
        select(
            total(redemptions.c.created_at >= day_start),
            total(redemptions.c.created_at >= month_start),
            total(),
        ).where(counted)
    ).one()
    return Usage(int(row[0]), int(row[1]), int(row[2]))


def insert_redemption(connection: Connection, redemption: Redemption, limit_units: int) -> None:
    connection.execute(
        insert(redemptions).values(
            redemption_id=redemption.redemption_id,
            request_id=redemption.request_id,
            account_number=redemption.account_number,
            reward_id=redemption.reward_id,
            quantity=redemption.quantity,
            region_code=redemption.region_code,
            price_points=redemption.price_points,
            amount_points=redemption.amount_points,
            limit_units=limit_units,
            state=redemption.state,
            failure_reason=redemption.failure_reason,
            hold_id=redemption.hold_id,
            created_at=redemption.created_at,
            updated_at=redemption.created_at,
        )
    )


def _redemption(row: Any, items: Sequence[Voucher] = ()) -> Redemption:
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
        vouchers=tuple(items),
    )


def get_redemption(
    connection: Connection, *, redemption_id: str = "", request_id: str = "", lock: bool = False
) -> Redemption | None:
    column = redemptions.c.redemption_id if redemption_id else redemptions.c.request_id
    query = select(redemptions).where(column == (redemption_id or request_id))
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        return None
    return _redemption(row, vouchers_of_redemption(connection, row.redemption_id))


def set_redemption_state(
    connection: Connection, redemption_id: str, from_state: str, to_state: str, now: datetime, reason: str = ""
) -> bool:
    """Moves a redemption from one state to the next; False when another worker moved it first."""
    result = connection.execute(
        update(redemptions)
        .where(and_(redemptions.c.redemption_id == redemption_id, redemptions.c.state == from_state))
        .values(state=to_state, failure_reason=reason, updated_at=now)
    )
    return result.rowcount == 1


def redemption_ids_in_state(connection: Connection, state: str, updated_before: datetime, limit: int) -> list[str]:
    query = (
        select(redemptions.c.redemption_id)
        .where(and_(redemptions.c.state == state, redemptions.c.updated_at <= updated_before))
        .order_by(redemptions.c.created_at)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


# --- vouchers ------------------------------------------------------------------------------------------------------


def _voucher(row: Any) -> Voucher:
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


def insert_vouchers(connection: Connection, items: Sequence[Voucher]) -> None:
    connection.execute(
        insert(vouchers),
        [
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
        ],
    )


def vouchers_of_redemption(connection: Connection, redemption_id: str) -> list[Voucher]:
    query = select(vouchers).where(vouchers.c.redemption_id == redemption_id).order_by(vouchers.c.seq)
    return [_voucher(row) for row in connection.execute(query)]


def get_voucher(connection: Connection, code: str, *, lock: bool = False) -> tuple[Voucher, str, str] | None:
    """The voucher, its redemption's state and hold id."""
    query = (
        select(vouchers, redemptions.c.state.label("redemption_state"), redemptions.c.hold_id)
        .join(redemptions, redemptions.c.redemption_id == vouchers.c.redemption_id)
        .where(vouchers.c.code == code)
    )
    if lock:
        query = query.with_for_update(of=vouchers)
    row = connection.execute(query).first()
    return None if row is None else (_voucher(row), row.redemption_state, row.hold_id)


def list_vouchers(
    connection: Connection, account_number: str, states: Sequence[str], after_id: int, limit: int
) -> list[tuple[int, Voucher]]:
    """Vouchers of completed redemptions, newest first."""
    query = (
        select(vouchers)
        .join(redemptions, redemptions.c.redemption_id == vouchers.c.redemption_id)
        .where(and_(vouchers.c.account_number == account_number, redemptions.c.state == "COMPLETED"))
        .order_by(vouchers.c.voucher_id.desc())
        .limit(limit)
    )
    if states:
        query = query.where(vouchers.c.state.in_(states))
    if after_id:
        query = query.where(vouchers.c.voucher_id < after_id)
    return [(row.voucher_id, _voucher(row)) for row in connection.execute(query)]


def set_voucher_state(
    connection: Connection, code: str, from_states: Sequence[str], to_state: str, **values: Any
) -> bool:
    result = connection.execute(
        update(vouchers)
        .where(and_(vouchers.c.code == code, vouchers.c.state.in_(from_states)))
        .values(state=to_state, **values)
    )
    return result.rowcount == 1


def cancel_vouchers_of_redemption(connection: Connection, redemption_id: str, now: datetime) -> None:
    connection.execute(
        update(vouchers)
        .where(and_(vouchers.c.redemption_id == redemption_id, vouchers.c.state == VoucherState.ISSUED))
        .values(state=VoucherState.CANCELLED, cancelled_at=now)
    )


def refund_id_of(connection: Connection, code: str) -> str:
    return str(connection.execute(select(vouchers.c.refund_id).where(vouchers.c.code == code)).scalar_one())


def expire_vouchers(connection: Connection, now: datetime, *, account_number: str = "", code: str = "") -> int:
    """Marks ISSUED vouchers past their expiry EXPIRED (all, one account's, or one code)."""
    condition = and_(vouchers.c.state == VoucherState.ISSUED, vouchers.c.expires_at <= now)
    if account_number:
        condition = and_(condition, vouchers.c.account_number == account_number)
    if code:
        condition = and_(condition, vouchers.c.code == code)
    return connection.execute(update(vouchers).where(condition).values(state=VoucherState.EXPIRED)).rowcount or 0


def voucher_codes_in_state(connection: Connection, state: str, limit: int) -> list[str]:
    query = select(vouchers.c.code).where(vouchers.c.state == state).order_by(vouchers.c.voucher_id).limit(limit)
    return list(connection.execute(query).scalars())


# --- charity -------------------------------------------------------------------------------------------------------


def add_missing_projects(connection: Connection, items: Sequence[CharityProject]) -> int:
    rows = [
        {
            "project_id": project.project_id,
            "name_en": project.name_en,
            "name_zh": project.name_zh,
            "points_per_unit": project.points_per_unit,
            "impact_unit": project.impact_unit,
        }
        for project in items
    ]
    return _insert_ignore(connection, charity_projects, rows)


def list_projects(connection: Connection, region_code: str, project_id: str = "") -> list[CharityProject]:
    impact = charity_impact.alias("impact")
    query = (
        select(charity_projects, impact.c.units, impact.c.donated_points)
        .outerjoin(
            impact, and_(impact.c.project_id == charity_projects.c.project_id, impact.c.region_code == region_code)
        )
        .order_by(charity_projects.c.project_id)
    )
    if project_id:
        query = query.where(charity_projects.c.project_id == project_id)
    return [
        CharityProject(
            row.project_id,
            row.name_en,
            row.name_zh,
            row.points_per_unit,
            row.impact_unit,
            row.units or 0,
            row.donated_points or 0,
        )
        for row in connection.execute(query)
    ]


def insert_donation(connection: Connection, **values: Any) -> None:
    connection.execute(insert(donations).values(**values))


def get_donation(connection: Connection, *, donation_id: str = "", request_id: str = "") -> Any:
    column = donations.c.donation_id if donation_id else donations.c.request_id
    return connection.execute(select(donations).where(column == (donation_id or request_id))).first()


def set_donation_state(connection: Connection, donation_id: str, to_state: str, reason: str = "") -> bool:
    result = connection.execute(
        update(donations)
        .where(and_(donations.c.donation_id == donation_id, donations.c.state == "PENDING"))
        .values(state=to_state, failure_reason=reason)
    )
    return result.rowcount == 1


def add_impact(connection: Connection, project_id: str, region_code: str, units: int, points: int) -> None:
    _insert_ignore(
        connection,
        charity_impact,
        [{"project_id": project_id, "region_code": region_code, "units": 0, "donated_points": 0}],
    )
    connection.execute(
        update(charity_impact)
        .where(and_(charity_impact.c.project_id == project_id, charity_impact.c.region_code == region_code))
        .values(units=charity_impact.c.units + units, donated_points=charity_impact.c.donated_points + points)
    )


def pending_donation_ids(connection: Connection, limit: int) -> list[str]:
    query = select(donations.c.donation_id).where(donations.c.state == "PENDING").limit(limit)
    return list(connection.execute(query).scalars())


# --- idempotency ---------------------------------------------------------------------------------------------------


def claim_request(
    connection: Connection, operation: str, request_id: str, fingerprint: str, result_ref: str, now: datetime
) -> tuple[str, str] | None:
    """Records a request id; None when it is new, else the (fingerprint, result_ref) stored first."""
    row = {
        "operation": operation,
        "request_id": request_id,
        "fingerprint": fingerprint,
        "result_ref": result_ref,
        "created_at": now,
    }
    if _insert_ignore(connection, idempotency_keys, [row]) == 1:
        return None
    stored = connection.execute(
        select(idempotency_keys.c.fingerprint, idempotency_keys.c.result_ref).where(
            and_(idempotency_keys.c.operation == operation, idempotency_keys.c.request_id == request_id)
        )
    ).one()
    return str(stored.fingerprint), str(stored.result_ref)
