"""Donations are whole units of impact."""

from __future__ import annotations

import pytest

from rewards_svc.domain.charity import CharityProject, donation_units
from service_kit.errors import InvalidArgument


def test_donations_are_whole_units() -> None:
    trees = CharityProject("trees", "Trees", "植树", 1000, "tree")
    assert donation_units(trees, 3000) == 3
    with pytest.raises(InvalidArgument):
        donation_units(trees, 1500)
