"""The region registry routes an account home by its number, and refuses what it cannot route with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_kit.accounts import new_account_number
from service_kit.errors import FailedPrecondition, InvalidArgument
from service_kit.regions import RegionRegistry
from service_kit.topology import plan


def test_an_account_routes_to_the_region_in_its_number() -> None:
    registry = RegionRegistry.from_entries(plan(["330000", "110000"]).regions)
    assert registry.route(new_account_number("110000")).region_code == "110000"
    assert registry.route(new_account_number("330000")).ledger_address.endswith(":18063")


def test_a_malformed_account_number_is_invalid() -> None:
    registry = RegionRegistry.from_entries(plan(["330000"]).regions)
    number = new_account_number("330000")
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(InvalidArgument, match="account_number"):
        registry.route(typo)


def test_an_account_of_an_unfederated_region_is_refused_with_a_reason() -> None:
    registry = RegionRegistry.from_entries(plan(["330000"]).regions)
    with pytest.raises(FailedPrecondition) as caught:
        registry.route(new_account_number("440300"))
    assert caught.value.reason == "REGION_NOT_FEDERATED"


def test_a_region_listed_twice_is_a_configuration_error() -> None:
    entries = plan(["330000"]).regions
    with pytest.raises(ValueError, match="twice"):
        RegionRegistry.from_entries([*entries, *entries])


def test_a_malformed_registry_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text('{"regions": []}')
    with pytest.raises(ValueError, match="malformed"):
        RegionRegistry.load(path)
