"""Alembic environment of incentives_svc; the shared body lives in service_kit.migrations."""

from incentives_svc.store import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata)
