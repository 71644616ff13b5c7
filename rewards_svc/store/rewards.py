"""Queries on the catalog: rewards, their stock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update

from rewards_svc.domain.catalog import UNLIMITED_STOCK, Reward
from rewards_svc.store.tables import insert_ignore, reward_table


def _row(reward: Reward, now: datetime) -> dict[str, Any]:
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


def from_row(row: Any) -> Reward:
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


def add_missing(connection: Connection, items: Sequence[Reward], now: datetime) -> int:
    return insert_ignore(connection, reward_table, [_row(reward, now) for reward in items])


def insert(connection: Connection, reward: Reward, now: datetime) -> bool:
    """False when the reward id is taken."""
    return insert_ignore(connection, reward_table, [_row(reward, now)]) == 1


def save(connection: Connection, reward: Reward, now: datetime) -> None:
    connection.execute(
        update(reward_table).where(reward_table.c.reward_id == reward.reward_id).values(_row(reward, now))
    )


# Built once: every redemption reads its reward, and building a statement costs more Python than running it.
_GET = select(reward_table).where(reward_table.c.reward_id == bindparam("reward_id"))
_GET_LOCKED = _GET.with_for_update()


def get(connection: Connection, reward_id: str, *, lock: bool = False) -> Reward | None:
    row = connection.execute(_GET_LOCKED if lock else _GET, {"reward_id": reward_id}).first()
    return None if row is None else from_row(row)


_LOCK_COUNTED_STOCK = (
    select(reward_table.c.stock)
    .where(and_(reward_table.c.reward_id == bindparam("reward_id"), reward_table.c.stock != UNLIMITED_STOCK))
    .with_for_update()
)


def lock_counted_stock(connection: Connection, reward_id: str) -> None:
    """Locks the reward row when its stock is counted (the row `change_stock` would write), before any redemption or
    voucher row of the same transaction: the lock order of docs/adr/0302."""
    connection.execute(_LOCK_COUNTED_STOCK, {"reward_id": reward_id})


def list_page(
    connection: Connection, *, category: str = "", include_retired: bool = False, after_id: str = "", limit: int = 0
) -> list[Reward]:
    query = select(reward_table).order_by(reward_table.c.reward_id)
    if category:
        query = query.where(reward_table.c.category == category)
    if not include_retired:
        query = query.where(reward_table.c.retired.is_(False))
    if after_id:
        query = query.where(reward_table.c.reward_id > after_id)
    if limit:
        query = query.limit(limit)
    return [from_row(row) for row in connection.execute(query)]


def change_stock(connection: Connection, reward_id: str, delta: int) -> None:
    """Adds delta to a counted stock; unlimited stock (-1) stays unlimited."""
    connection.execute(
        update(reward_table)
        .where(and_(reward_table.c.reward_id == reward_id, reward_table.c.stock != UNLIMITED_STOCK))
        .values(stock=reward_table.c.stock + delta)
    )
