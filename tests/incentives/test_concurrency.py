"""A campaign never pays more than its budget, however many bonuses are paid at once: the ledger's campaign account
may not go negative and is locked per posting (PostgreSQL, real threads)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from carbon.incentives.v1 import incentives_service_pb2 as pb
from incentives_svc.domain.campaigns import TargetKind
from incentives_svc.store import offers as offer_store
from service_kit.accounts import campaign_account
from tests.incentives.incentives_harness import World


def test_a_campaign_stops_at_its_budget_under_concurrent_fulfilment(pg_world: World) -> None:
    world = pg_world
    campaign_id = world.campaign(TargetKind.EVERYONE, bonus_points=50, budget_points=150)
    residents = [world.resident() for _ in range(6)]
    for resident in residents:
        (offer,) = world.offers(resident).offers
        world.accept(resident, offer.offer_id)
    for resident in residents:
        world.transit(resident, world.now + timedelta(minutes=1))
    world.claim_without_paying()
    with world.engine.connect() as conn:
        owed = offer_store.unpaid(conn, 100)
    assert len(owed) == 6
    # Every bonus twice at once, from eight threads: each offer settles once, the budget pays three.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(world.incentives.payments.pay, owed + owed))
    states = sorted(o.state for resident in residents for o in world.offers(resident).offers)
    assert states == [pb.OFFER_STATE_FULFILLED] * 3 + [pb.OFFER_STATE_BUDGET_EXHAUSTED] * 3
    assert sum(world.balance(r) for r in residents) == 6 * 10 + 150
    assert world.balance(campaign_account(campaign_id)) == 0
    (campaign,) = world.stub.ListCampaigns(pb.ListCampaignsRequest()).campaigns
    assert (campaign.paid_points, campaign.bonuses_paid, campaign.exhausted) == (150, 3, True)
    assert world.offers(world.resident()).offers == []  # a spent campaign is offered no more
