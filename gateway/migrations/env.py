"""Alembic environment of gateway; the shared body lives in service_kit.migrations."""

from gateway.store import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata)
