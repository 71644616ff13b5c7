"""Alembic environment of identity_svc; the shared body lives in service_kit.migrations."""

from identity_svc.store import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata)
