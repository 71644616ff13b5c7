"""The ops API's own tables: staff users and their tokens, the audit log, four-eyes adjustment requests."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from service_kit.db import UtcDateTime

metadata = MetaData()

staff_users = Table(
    "ops_staff_users",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("display_name", String(100), nullable=False),
    # viewer | community_staff | operator | admin
    Column("role", String(20), nullable=False),
    # Set for community_staff only: the region and community centre the person works at.
    Column("region_code", String(6), nullable=False, server_default=""),
    Column("centre_id", String(64), nullable=False, server_default=""),
    Column("active", Integer, nullable=False, server_default="1"),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(32), nullable=False),
)

staff_tokens = Table(
    "ops_staff_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("ops_staff_users.user_id"), nullable=False, index=True),
    # SHA-256 of the bearer token: the token has 256 random bits, so a plain digest cannot be reversed or guessed.
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("label", String(100), nullable=False, server_default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

audit_log = Table(
    "ops_audit_log",
    metadata,
    Column("audit_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    Column("actor", String(32), nullable=False),
    Column("role", String(20), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("request_id", String(64), nullable=False),
    # "ok", or the problem's reason code.
    Column("outcome", String(64), nullable=False),
    Column("details_json", Text, nullable=False, server_default="{}"),
    # A retried request (same X-Request-Id) is one mutation and one audit row.
    UniqueConstraint("actor", "request_id", "action", name="uq_ops_audit_request"),
)

adjustments = Table(
    "ops_adjustments",
    metadata,
    Column("adjustment_id", String(36), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("account_number", String(16), nullable=False, index=True),
    Column("region_code", String(6), nullable=False),
    # Signed: positive credits the account from system:adjustment, negative debits it back.
    Column("amount_points", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    # PENDING -> APPROVED -> POSTED | FAILED; PENDING -> REJECTED
    Column("state", String(16), nullable=False, index=True),
    Column("requested_by", String(32), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("decided_by", String(32), nullable=False, server_default=""),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("decision_reason", Text, nullable=False, server_default=""),
    Column("transfer_id", String(128), nullable=False, server_default=""),
    Column("failure_reason", String(64), nullable=False, server_default=""),
    UniqueConstraint("requested_by", "request_id", name="uq_ops_adjustment_request"),
)
