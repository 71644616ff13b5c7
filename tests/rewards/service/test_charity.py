"""Charity use cases: donations post to the ledger and count their impact per region."""

from __future__ import annotations

import pytest

from rewards_svc.server import RewardsServices
from service_kit.errors import Unavailable
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
