"""The gateway's tables: cross-region transfers and redeem-anywhere requests, each driven under a lease.

Instants are UtcDateTime: stored as naive UTC (SQLite keeps no zone), read back aware.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

from service_kit.db import UtcDateTime

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
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("hold_timeout_ms", BigInteger, nullable=False),
    Column("hold_expires_at", UtcDateTime()),
    # JSON list of the lots the source hold took (lot id, earned day, expiry, points).
    Column("held_lots", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    # Whoever drives a transfer (a request thread or the recovery loop) leases it, so two never race a step.
    Column("lease_until", UtcDateTime()),
    # The gateway instance that wrote the lease: its restarted successor takes it back at once (ADR 0622).
    Column("lease_owner", String(64)),
    # JSON list of lots the destination recreates instead of held_lots (an unwind returns the lots that came over).
    Column("carry_lots", Text),
    # Who asked on the resident's behalf ("platform:<code>", "staff:<staff id>"), from their authorization.
    Column("authorized_by", String(200), nullable=False, server_default=""),
)

redeem_anywhere = Table(
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
    # JSON list of the voucher codes rewards issued.
    Column("voucher_codes", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    Column("lease_until", UtcDateTime()),
    Column("lease_owner", String(64)),
    Column("authorized_by", String(200), nullable=False, server_default=""),
)
