"""Alembic environment of ops_api; the shared body lives in service_kit.migrations."""

from ops_api.store import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata)
