"""The tables of incentives_svc (SQLAlchemy 2.x Core): the schema the migrations create. Times are stored UTC."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text, false

from service_kit.db import UtcDateTime, opaque_key

metadata = MetaData()

campaigns = Table(
    "incentives_campaigns",
    metadata,
    Column("campaign_id", opaque_key(23), primary_key=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),  # of the request's campaign, to refuse a reused request_id
    Column("name", String(100), nullable=False),
    Column("behaviour", String(64), nullable=False),
    Column("bonus_points", BigInteger, nullable=False),
    Column("bonus_percent", Integer, nullable=False),
    Column("target_kind", Integer, nullable=False),
    Column("target_days", Integer, nullable=False),
    Column("target_weekdays", Integer, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("budget_points", BigInteger, nullable=False),
    Column("scope", Integer, nullable=False),
    Column("funded", Boolean, nullable=False),
    Column("paid_points", BigInteger, nullable=False),
    Column("bonuses_paid", BigInteger, nullable=False),
    Column("exhausted", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Closing: the remainder decided once (so every retry posts the same transfer), then marked returned.
    Column("returning_points", BigInteger, nullable=True),
    Column("returned", Boolean, nullable=False, server_default=false()),
)

# One row per profiled resident: the profile as domain.profiles.to_json writes it. Deleting the row is forgetting.
profiles = Table(
    "incentives_profiles",
    metadata,
    Column("account_number", opaque_key(16), primary_key=True),
    Column("profile", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Residents who switched personalisation off: never profiled while their row is here.
refusals = Table(
    "incentives_refusals",
    metadata,
    Column("account_number", opaque_key(16), primary_key=True),
    Column("refused_at", UtcDateTime, nullable=False),
)

# SetPersonalisation's idempotency keys with what the first call answered.
personalisation_requests = Table(
    "incentives_personalisation_requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("account_number", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("profile_deleted", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Accepted offers, from acceptance to the bonus: ACCEPTED -> PAYING (an event fulfilled it; the ledger transfer is
# owed) -> FULFILLED or BUDGET_EXHAUSTED. An offer leaves ACCEPTED once, so it pays at most one bonus.
offers = Table(
    "incentives_offers",
    metadata,
    Column("offer_id", opaque_key(40), primary_key=True),
    Column("campaign_id", opaque_key(23), nullable=False),
    Column("account_number", opaque_key(16), nullable=False),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("state", String(20), nullable=False),
    Column("accepted_at", UtcDateTime, nullable=False),
    Column("event_ref", String(200), nullable=False, server_default=""),  # "<partner_id>/<event_id>"
    Column("occurred_at", UtcDateTime, nullable=True),
    Column("transfer_id", String(128), nullable=False, server_default=""),
    Column("bonus_points", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_incentives_offers_waiting", "account_number", "state"),
    Index("ix_incentives_offers_state", "state"),
)

# Where this service is in ingest's list of accepted events (ListAcceptedEvents' page token).
cursors = Table(
    "incentives_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("page_token", String(512), nullable=False),
)
