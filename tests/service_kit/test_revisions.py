"""The head read from the revision scripts' text is alembic's head, and a start on a schema at head leaves alembic out
(service_kit/revisions.py, docs/adr/0027-test-suite-time-cheaper-process-starts.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from service_kit import db, revisions

SERVICES = ["identity_svc", "ingest_svc", "ledger_svc", "rewards_svc", "incentives_svc", "gateway", "ops_api"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_head_read_from_the_scripts_is_alembics(service: str, tmp_path: Path) -> None:
    config = db.alembic_config(service, db.make_engine(f"sqlite:///{tmp_path / 'unused.db'}"))
    assert [revisions.head(service)] == ScriptDirectory.from_config(config).get_heads()


def test_scripts_that_do_not_say_their_head_plainly_leave_it_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = tmp_path / "merged_svc" / "migrations" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "merged_svc" / "__init__.py").write_text("")
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    (versions / "c.py").write_text('revision = "c"\ndown_revision = ("a", "b")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert revisions.head("merged_svc") is None


def test_only_a_schema_at_head_is_at_head(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            assert not revisions.at_head("ledger_svc", connection)  # empty: no version table
            db.upgrade("ledger_svc", connection, "ledger_0001")
            connection.commit()
            assert not revisions.at_head("ledger_svc", connection)
            db.upgrade("ledger_svc", connection)
            connection.commit()
            assert revisions.at_head("ledger_svc", connection)
            connection.execute(text("UPDATE alembic_version_ledger_svc SET version_num = 'ledger_0001'"))
            assert not revisions.at_head("ledger_svc", connection)
            connection.rollback()
    finally:
        engine.dispose()


def test_migrating_a_schema_at_head_does_not_run_alembic(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.make_engine(database_url)
    try:
        db.migrate("gateway", engine)

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("alembic ran on a schema at head")

        monkeypatch.setattr(db, "upgrade", refuse)
        monkeypatch.setattr(db, "_schema_copier", None)
        db.migrate("gateway", engine)
    finally:
        engine.dispose()
