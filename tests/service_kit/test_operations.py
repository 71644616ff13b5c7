"""`carbon migrate`: every database of a system's registry to head, with progress; a rerun changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from service_kit.cli import main
from service_kit.topology import REGISTRY_FILE, plan


def test_carbon_migrate_brings_each_database_of_the_registry_to_head_and_reruns_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan(["330000"], host="127.0.0.1", base_port=47100).save(tmp_path / REGISTRY_FILE)
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    assert "6 databases at head" in capsys.readouterr().out
    ledger = create_engine(f"sqlite:///{tmp_path / 'ledger_svc-330000.db'}")
    assert {"job_runs", "job_leases", "lots"} <= set(inspect(ledger).get_table_names())
    ledger.dispose()
    assert main(["migrate", "--data-dir", str(tmp_path), "--service", "ledger_svc"]) == 0
    assert "1 databases at head" in capsys.readouterr().out
    assert main(["migrate", "--database-url", "sqlite://"]) == 2
