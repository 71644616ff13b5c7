"""The tables of rewards_svc (SQLAlchemy 2.x Core) and the insert-if-absent statements every query module uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql, sqlite

from service_kit.db import UtcDateTime

metadata = MetaData()


reward_table = Table(
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

redemption_table = Table(
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
    # The Hold's timeout as sent (0: written before it was kept); a retried Hold repeats it.
    Column("hold_timeout_s", Integer, nullable=False, server_default="0"),
    # The account the Hold commits to in the same call (empty: Hold and CommitHold apart); a retried Hold repeats it.
    Column("hold_commit_account", String(64), nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Set on an unwind that did not see the hold finished: until then recovery releases a hold that lands late.
    Column("hold_watch_until", UtcDateTime, nullable=True),
    Index("ix_redemptions_account_reward", "account_number", "reward_id", "created_at"),
    Index("ix_redemptions_state", "state"),
    Index("ix_redemptions_hold_watch_until", "hold_watch_until"),
)

voucher_table = Table(
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
    # The RefundTransfer reason as sent; a retried refund repeats it (the ledger fingerprints it).
    Column("refund_reason", String(256), nullable=False, server_default=""),
    Column("terms", Text, nullable=False),
    Index("ux_vouchers_redemption_seq", "redemption_id", "seq", unique=True),
    Index("ix_vouchers_account", "account_number", "voucher_id"),
    Index("ix_vouchers_state", "state"),
)

project_table = Table(
    "charity_projects",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("name_en", String(200), nullable=False),
    Column("name_zh", String(200), nullable=False),
    Column("points_per_unit", BigInteger, nullable=False),
    Column("impact_unit", String(32), nullable=False),
)

impact_table = Table(
    "charity_impact",
    metadata,
    Column("project_id", String(64), ForeignKey("charity_projects.project_id"), primary_key=True),
    Column("region_code", String(6), primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("donated_points", BigInteger, nullable=False),
)

donation_table = Table(
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

# Idempotency of the operations that have no table of their own keyed by request id: the first response is kept
# (a JSON document) so a retry returns exactly what the first call returned.
request_table = Table(
    "idempotency_keys",
    metadata,
    Column("operation", String(32), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("result_ref", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("response", Text, nullable=False, server_default=""),
)


def insert_ignore(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Inserts rows whose key is not there yet; returns how many were added."""
    if not rows:
        return 0
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(table).values(list(rows)).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 for a multi-row VALUES insert.
    return len(connection.execute(statement.returning(*table.primary_key.columns)).all())


def insert_if_absent(table: Table, conflict_columns: Sequence[str], returning: Column[Any]) -> dict[str, Insert]:
    """INSERT ... ON CONFLICT (conflict_columns) DO NOTHING RETURNING `returning`, by dialect name: built once for a
    hot path (building a statement costs more Python than running it), with values bound per call. The dialects
    spell ON CONFLICT alike but are separate classes."""
    dialects: dict[str, Any] = {"postgresql": postgresql, "sqlite": sqlite}
    return {
        name: dialect.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns)).returning(returning)
        for name, dialect in dialects.items()
    }
