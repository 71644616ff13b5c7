"""The tables of identity_svc (SQLAlchemy 2.x Core).

No column holds a raw ID number, name or phone number: lookups and the name check go by keyed hash, the real-name
record is one AES-GCM blob (see identity_svc/keys.py), and closing an account nulls all of them (ADR 0202).
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
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

from service_kit import leader_lease
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
    # Keyed hash of the normalised name (KeyRing.name_hash) and the id of the HMAC key that made it: NULL or another
    # key's means "recompute from the record" (ADR 0204). NULL once closed.
    Column("name_hash", String(64)),
    Column("name_hash_key", String(16)),
    Column("opened_via", SmallInteger, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    # An account opened for a child under 14 (ADR 0206): the guardian's account (any region), the instant control
    # passes to the holder (start of the 14th birthday, China Standard Time) and when that hand-over was recorded.
    Column("guardian_account_number", String(16)),
    Column("control_passes_at", UtcDateTime, index=True),
    Column("control_passed_at", UtcDateTime),
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
    # The guardian who decided for a holder under 14 (ADR 0206); NULL when the holder decided.
    Column("guardian_account_number", String(16)),
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

# The audit of binding changes and refused bindings (ADR 0204); platform_user_id is erased when the account closes.
binding_events = Table(
    "binding_events",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("platform", String(32)),
    Column("platform_user_id", String(128)),
    Column("community_centre_id", String(128)),
    Column("request_id", String(128)),
    # Who asked: the calling service's identity (SPIFFE ID), the gateway's external caller and its platform, staff.
    Column("caller_service", String(255)),
    Column("caller", String(128)),
    Column("caller_platform", String(32)),
    Column("staff_id", String(128)),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_binding_events_account", "account_number", "id"),
)

# Resident authorizations issued (ADR 0205): the operation, who asked and the token's own values, so that a retry
# signs the same token again. The key is per account: operation ids are chosen by callers.
resident_authorizations = Table(
    "resident_authorizations",
    metadata,
    Column("account_number", String(16), ForeignKey("accounts.account_number"), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("operation", SmallInteger, nullable=False),
    Column("amount_points", BigInteger, nullable=False),
    Column("to_account", String(16), nullable=False),
    Column("reward_id", String(64)),
    Column("quantity", Integer, nullable=False),
    Column("platform", String(32)),
    Column("staff_id", String(128)),
    Column("caller_service", String(255), nullable=False),
    Column("caller", String(128)),
    Column("token_id", String(36), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)


# Reminders (ADR 0113). The preference is a row only once a resident changed it: reminders are on by default.
reminder_preferences = Table(
    "reminder_preferences",
    metadata,
    Column("account_number", String(16), ForeignKey("accounts.account_number"), primary_key=True),
    Column("reminders_off", Boolean, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# The outbox: one row per notice key, so a notice is queued (and sent) once. The delivery loop claims due PENDING
# rows by moving next_attempt_at_us forward with a conditional UPDATE, so replicas do not send one row twice.
reminder_outbox = Table(
    "reminder_outbox",
    metadata,
    Column("notice_key", String(200), primary_key=True),
    Column("account_number", String(16), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("expires_on", String(10), nullable=False),
    Column("period", String(7), nullable=False),
    Column("state", String(16), nullable=False),
    Column("route", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at_us", BigInteger, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("queued_at_us", BigInteger, nullable=False),
    Column("delivered_at_us", BigInteger, nullable=False),
    Index("ix_reminder_outbox_due", "state", "next_attempt_at_us"),
    Index("ix_reminder_outbox_state_queued", "state", "queued_at_us", "notice_key"),
)

# Corrections of real-name records (ADR 0207): which fields changed and on whose word; the values are in the sealed
# record only. The request id makes a retry return the first answer (fingerprint: KeyRing.fingerprint of the body).
record_corrections = Table(
    "record_corrections",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("account_number", String(16), ForeignKey("accounts.account_number"), nullable=False, index=True),
    # Comma-separated field names, e.g. "name,phone_number".
    Column("fields", String(64), nullable=False),
    Column("caller_service", String(255), nullable=False),
    Column("platform", String(32)),
    Column("staff_id", String(128)),
    Column("corrected_at", UtcDateTime, nullable=False),
)

# The leader lease among identity's replicas (service_kit.leader_lease, ADR 0108/0210): the row named "scheduler"
# exists from the migration on.
job_leases = leader_lease.lease_table(metadata)

# One row per scheduled job and China day (ADR 0210): its state, how many accounts it handled, attempts and last error.
job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(32), nullable=False),
    Column("period", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("items", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("holder", String(128), nullable=False),
    Column("error", Text, nullable=False),
    PrimaryKeyConstraint("job", "period", name="pk_identity_job_runs"),
)
