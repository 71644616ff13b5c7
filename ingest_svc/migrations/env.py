"""Alembic environment of ingest_svc; the shared body lives in service_kit.migrations."""

from ingest_svc.store.tables import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata)
