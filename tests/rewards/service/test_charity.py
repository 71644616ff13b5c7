"""Charity use cases: donations post to the ledger and count their impact per region."""

from __future__ import annotations

from rewards_svc.server import RewardsServices
from tests.rewards.conftest import funded, refusal
from tests.rewards.rewards_fake_ledger import FakeLedger


def test_donations_count_impact_per_region(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 12_000)
    donation = service.charity.donate("d1", account, "trees", 3000)
    assert (donation.units, donation.project.units_region, donation.project.donated_points_region) == (3, 3, 3000)
    assert service.charity.donate("d1", account, "trees", 3000).project.units_region == 3
    books = service.charity.donate("d2", account, "childrens-books", 5000)
    assert books.units == 1
    assert ledger.balances["system:donation"] == 8000
    assert refusal(service.charity.donate, "d3", account, "childrens-books", 5000) == "INSUFFICIENT_POINTS"
