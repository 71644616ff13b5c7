"""Charity use cases: donations post to the ledger and count their impact per region."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rewards_svc.server import RewardsServices
from service_kit.errors import Unavailable
from tests.rewards.conftest import ManualClock, funded, refusal
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


def test_a_donation_whose_id_the_ledger_holds_with_another_body_is_settled_not_failed(
    service: RewardsServices, ledger: FakeLedger
) -> None:
    # The ledger posted the donation (here: under the reference an older version sent) and the answer was lost;
    # the re-post is answered IDEMPOTENCY_KEY_REUSED, which is not a refusal: the posted transfer settles it.
    account = funded(ledger, "330000", 3000)
    ledger.lose_donation_answers = True
    with pytest.raises(Unavailable):
        service.charity.donate("d1", account, "trees", 3000)
    ledger.lose_donation_answers = False
    [transfer_id] = [key for key in ledger.transfers if key.startswith("rewards:donate:")]
    ledger.references[transfer_id] = "as an older version sent it"
    assert service.recovery.recover().donations_finished == 1
    done = service.charity.donate("d1", account, "trees", 3000)
    assert (done.units, done.project.donated_points_region) == (3, 3000)
    assert ledger.balances[account] == 0 and ledger.balances["system:donation"] == 3000


def test_a_months_charity_figures_count_that_months_completed_donations(
    service: RewardsServices, ledger: FakeLedger, clock: ManualClock
) -> None:
    account = funded(ledger, "330000", 20_000)
    clock.now = datetime(2026, 3, 31, 15, 59, tzinfo=UTC)  # 23:59 on 31 March, China time
    service.charity.donate("march", account, "trees", 2000)
    clock.now = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 00:00 on 1 April
    service.charity.donate("april", account, "trees", 3000)
    service.charity.donate("book", account, "childrens-books", 5000)

    march = {project.project_id: (units, points) for project, units, points in service.charity.month_figures(2026, 3)}
    april = {project.project_id: (units, points) for project, units, points in service.charity.month_figures(2026, 4)}

    assert march == {"trees": (2, 2000), "childrens-books": (0, 0)}
    assert april == {"trees": (3, 3000), "childrens-books": (1, 5000)}
    (trees, _, _) = service.charity.month_figures(2026, 3)[1]
    assert trees.project_id == "trees" and trees.units_region == 5, "all-time units beside the month's"
