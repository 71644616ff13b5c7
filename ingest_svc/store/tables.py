"""The tables of ingest's database (SQLAlchemy Core): the schema the migrations create. Times are stored UTC."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from service_kit.db import opaque_key

metadata = MetaData()


behaviours = Table(
    "ingest_behaviours",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name_en", String(200), nullable=False),
    Column("name_zh", String(200), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("region_code", String(6), nullable=False, server_default=""),
    Column("tiered", Boolean, nullable=False, server_default="0"),
)

rule_versions = Table(
    "ingest_rule_versions",
    metadata,
    Column("rule_version_id", String(128), primary_key=True),
    Column("behaviour", String(64), nullable=False),
    Column("region_code", String(6), nullable=False, server_default=""),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("points_per_unit", BigInteger, nullable=False),
    Column("co2e_milligrams_per_unit", BigInteger, nullable=False),
    Column("co2e_unit", String(200), nullable=False),
    Column("co2e_source", Text, nullable=False),
    Column("co2e_derivation", Text, nullable=False, server_default=""),
    Column("daily_cap_milli", BigInteger, nullable=False),
    Column("max_quantity_milli", BigInteger, nullable=False),
    Column("tier_points", Text, nullable=False, server_default="{}"),  # JSON object
    Column("created_at", DateTime(timezone=True), nullable=False),
)

partners = Table(
    "ingest_partners",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("allowed_behaviours", Text, nullable=False),  # JSON list
    Column("allowed_regions", Text, nullable=False),  # JSON list
    Column("rate_limit_per_second", Integer, nullable=False),
    Column("active_key_id", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per change of a partner's allowed behaviours (UpdatePartnerBehaviours), keyed by its request id: the
# history of what a partner could report, and the idempotency record of the change.
partner_changes = Table(
    "ingest_partner_changes",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("behaviours_before", Text, nullable=False),  # JSON list
    Column("behaviours_after", Text, nullable=False),  # JSON list
    Column("reason", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

partner_keys = Table(
    "ingest_partner_keys",
    metadata,
    Column("partner_id", String(64), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    # AES-256-GCM ciphertext of the secret (see docs/adr/0402-partner-secrets-encrypted-at-rest.md).
    Column("secret_ciphertext", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=True),
    Column("request_id", String(128), nullable=True, unique=True),
)

# One row per accepted event; (partner_id, event_id) is the idempotency key and the last word on duplicates.
events = Table(
    "ingest_events",
    metadata,
    Column("partner_id", opaque_key(64), primary_key=True),
    Column("event_id", opaque_key(128), primary_key=True),
    Column("batch_id", String(128), nullable=False),
    Column("account_number", String(16), nullable=False),
    Column("behaviour", String(64), nullable=False),
    Column("region_code", String(6), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),  # China Standard Time
    Column("quantity_milli", BigInteger, nullable=False),
    Column("tier", String(32), nullable=False),
    Column("evidence_ref", String(512), nullable=False),
    Column("rule_version_id", String(128), nullable=False),
    Column("counted_before_milli", BigInteger, nullable=False),
    Column("counted_milli", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("co2e_grams", BigInteger, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("transfer_id", String(64), nullable=False),
    # domain.event_rows: PENDING, NO_CREDIT or LEDGER_FAILED as written; read CREDITED once its credit batch is POSTED.
    Column("status", String(16), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False),
    Column("credit_batch_id", String(40), nullable=False, server_default=""),
    # Followers read events in the order they were accepted (ListAcceptedEvents; migration ingest_0005).
    Index("ix_ingest_events_accepted", "accepted_at", "partner_id", "event_id"),
    # One account's events, for the person's copy of their data (ADR 0208).
    Index("ix_ingest_events_account", "account_number", "partner_id", "event_id"),
)

# The outbox: one row per recording transaction that owes the ledger credits, listing the events it owes.
credit_batches = Table(
    "ingest_credit_batches",
    metadata,
    Column("credit_batch_id", String(40), primary_key=True),
    Column("partner_id", String(64), nullable=False),
    Column("event_ids", Text, nullable=False),  # JSON list of the batch's PENDING events
    Column("state", String(16), nullable=False),  # PENDING -> POSTED
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=True),
    Index("ix_ingest_credit_batches_state", "state", "created_at"),
)

cap_counters = Table(
    "ingest_cap_counters",
    metadata,
    Column("account_number", opaque_key(16), primary_key=True),
    Column("behaviour", opaque_key(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("counted_milli", BigInteger, nullable=False),
    # Room on each page so that a batch's update of a counter stays on its page with no new index entry (HOT): a
    # counter is rewritten by every batch that counts for it on its day. ADR 0407, migration ingest_0003.
    postgresql_with={"fillfactor": 70},
)

daily_stats = Table(
    "ingest_daily_stats",
    metadata,
    Column("region_code", String(6), primary_key=True),
    Column("behaviour", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("events", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("co2e_grams", BigInteger, nullable=False),
)

# How far the sweep of claims left by attempts that never recorded has read the gateway's list of this region's
# attempts: one row, its page token (docs/adr/0416-orphan-claims-sweep.md, migration ingest_0010).
claim_sweep = Table(
    "ingest_claim_sweep",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("page_token", Text, nullable=False),
)

# Events recorded with 0 points because another event held their activity nationally (reason DUPLICATE_ACTIVITY):
# the holder the gateway named, for ExplainScore (docs/adr/0413-claims-in-the-credit-outbox.md).
activity_holders = Table(
    "ingest_activity_holders",
    metadata,
    Column("partner_id", opaque_key(64), primary_key=True),
    Column("event_id", opaque_key(128), primary_key=True),
    Column("holder_region", String(6), nullable=False),
    Column("holder_partner", String(64), nullable=False),
    Column("holder_event_id", String(128), nullable=False),
)
