"""The tables of identity_svc (SQLAlchemy 2.x Core).

No column holds a raw ID number, name or phone number: lookups go by keyed hash, the real-name record is one
AES-GCM blob (see identity_svc/keys.py), and closing an account nulls all of them (ADR 0202).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

from service_kit.db import UtcDateTime

metadata = MetaData()


_BigId = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("account_number", String(16), primary_key=True),
    Column("region_code", String(6), nullable=False),
    Column("state", SmallInteger, nullable=False),
    # HMAC-SHA256 of the ID number: the one-person-one-account constraint. NULL once closed (erased).
    Column("id_hash", String(64), unique=True),
    Column("person_key", String(64), index=True),
    Column("phone_hash", String(64), index=True),
    # The real-name record, AES-GCM sealed under the key id.
    Column("record_key_id", String(32)),
    Column("record_blob", LargeBinary),
    Column("opened_via", SmallInteger, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
)

channel_bindings = Table(
    "channel_bindings",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("platform_user_id", String(128), primary_key=True),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    Column("channel", SmallInteger, nullable=False),
    Column("bound_at", UtcDateTime, nullable=False),
)

openings = Table(
    "openings",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    Column("created", Boolean, nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("community_centre_id", String(128)),
    Column("staff_id", String(128)),
    Column("opened_at", UtcDateTime, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False),
    Column("category", SmallInteger, nullable=False),
    Column("action", SmallInteger, nullable=False),
    Column("effective_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Index("ix_consents_account_effective", "account_number", "effective_at", "id"),
)

closures = Table(
    "closures",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    Column("disposition", SmallInteger, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    # PENDING (points being moved), DONE, FAILED
    Column("state", String(16), nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
)
