"""Recommendations follow the ledger balance."""

from __future__ import annotations

from rewards_svc.server import RewardsServices
from tests.rewards.conftest import funded
from tests.rewards.rewards_fake_ledger import FakeLedger


def test_recommendations_use_the_ledger_balance(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "310000", 7000)
    available, items = service.recommendations.recommend(account, "310000", 3)
    assert available == 7000
    out_of_reach = [(r.reward.reward_id, r.missing_points) for r in items if not r.affordable]
    assert out_of_reach[0] == ("shanghai-health-check", 200)
    assert all(r.reward.price_points <= 7000 for r in items if r.affordable)
