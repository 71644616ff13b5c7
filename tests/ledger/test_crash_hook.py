"""The ledger's fault-test hook (CARBON_TEST_CRASH_AT): only the named points are accepted, and only the named method
is replaced; tests/faults/ kills real ledger processes with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_svc.server import CRASH_POINTS, LedgerServiceServicer, registrations
from service_kit import db
from service_kit.settings import Settings, SettingsError


def servicer_with(tmp_path: Path, crash_at: str) -> LedgerServiceServicer:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    settings = Settings(service="ledger_svc", region_code="330000", extra={"CARBON_TEST_CRASH_AT": crash_at})
    servicer: LedgerServiceServicer = registrations(settings, engine)[0].servicer
    return servicer


def test_an_unknown_crash_point_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CARBON_TEST_CRASH_AT"):
        servicer_with(tmp_path, "after_everything")


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_a_crash_point_replaces_only_its_method(tmp_path: Path, point: str) -> None:
    servicer = servicer_with(tmp_path, point)
    replaced = {name for name in CRASH_POINTS.values() if name in vars(servicer)}
    assert replaced == {CRASH_POINTS[point]}
    assert "Hold" not in vars(servicer_with(tmp_path, ""))
