"""Credit batches (the outbox) replace per-event status updates; the events' status index goes.

Events still PENDING when this runs (a crash before the upgrade) are gathered, per partner, into one PENDING credit
batch, so the startup sweep or a resubmission finishes them exactly as before.

Revision ID: ingest_0002
Revises: ingest_0001
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0002"
down_revision: str | None = "ingest_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_credit_batches",
        sa.Column("credit_batch_id", sa.String(40), primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("posted_at", TZ, nullable=True),
    )
    op.create_index("ix_ingest_credit_batches_state", "ingest_credit_batches", ["state", "created_at"])
    op.add_column("ingest_events", sa.Column("credit_batch_id", sa.String(40), nullable=False, server_default=""))
    _gather_pending_events()
    op.drop_index("ix_ingest_events_pending", table_name="ingest_events")


def _gather_pending_events() -> None:
    conn = op.get_bind()
    pending: dict[str, list[str]] = {}
    for partner_id, event_id in conn.execute(
        sa.text("SELECT partner_id, event_id FROM ingest_events WHERE status = 'PENDING' ORDER BY accepted_at")
    ):
        pending.setdefault(partner_id, []).append(event_id)
    now = datetime.now(UTC)
    for partner_id, event_ids in pending.items():
        batch_id = "upgrade-" + hashlib.sha256(partner_id.encode()).hexdigest()[:32]
        conn.execute(
            sa.text(
                "INSERT INTO ingest_credit_batches (credit_batch_id, partner_id, event_ids, state, created_at) "
                "VALUES (:b, :p, :ids, 'PENDING', :now)"
            ),
            {"b": batch_id, "p": partner_id, "ids": json.dumps(event_ids), "now": now},
        )
        conn.execute(
            sa.text("UPDATE ingest_events SET credit_batch_id = :b WHERE partner_id = :p AND status = 'PENDING'"),
            {"b": batch_id, "p": partner_id},
        )


def downgrade() -> None:
    op.create_index("ix_ingest_events_pending", "ingest_events", ["status", "accepted_at"])
    op.execute(
        "UPDATE ingest_events SET status = 'CREDITED' WHERE status = 'PENDING' AND credit_batch_id IN "
        "(SELECT credit_batch_id FROM ingest_credit_batches WHERE state = 'POSTED')"
    )
    op.drop_column("ingest_events", "credit_batch_id")
    op.drop_index("ix_ingest_credit_batches_state", table_name="ingest_credit_batches")
    op.drop_table("ingest_credit_batches")
