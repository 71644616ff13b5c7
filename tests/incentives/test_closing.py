"""A finished campaign gives what is left of its budget back to issuance, once, and only when no event can earn from
it any more and every bonus it owes is paid."""

from __future__ import annotations

from datetime import timedelta

from carbon.incentives.v1 import incentives_service_pb2 as pb
from incentives_svc.clients import LedgerClient
from incentives_svc.domain.campaigns import closes_at
from incentives_svc.service.closing import RETURN_PREFIX, return_posting
from incentives_svc.store import campaigns as campaign_store
from service_kit.accounts import campaign_account
from tests.incentives.incentives_harness import World


def the_campaign(world: World) -> pb.Campaign:
    (campaign,) = world.stub.ListCampaigns(pb.ListCampaignsRequest()).campaigns
    return campaign


def close_time(world: World, campaign_id: str) -> timedelta:
    with world.engine.connect() as conn:
        campaign = campaign_store.get(conn, campaign_id)
    assert campaign is not None
    return closes_at(campaign) - world.now


def test_the_remainder_goes_back_once_the_last_event_could_have_arrived(world: World) -> None:
    campaign_id = world.campaign(bonus_points=50, budget_points=500)
    li = world.resident()
    (offer,) = world.offers(li).offers
    world.accept(li, offer.offer_id)
    world.transit(li, world.now + timedelta(minutes=1))
    world.follow()
    assert (the_campaign(world).paid_points, the_campaign(world).closed) == (50, False)

    # The window has ended, but a counter record of its last day could still arrive: the budget stays.
    world.region.clock.now += close_time(world, campaign_id) - timedelta(minutes=1)
    world.follow()
    assert world.balance(campaign_account(campaign_id)) == 450 and not the_campaign(world).closed

    world.region.clock.now += timedelta(minutes=2)
    world.follow()
    world.follow()  # a second pass changes nothing
    closed = the_campaign(world)
    assert (closed.closed, closed.returned_points, closed.paid_points) == (True, 450, 50)
    assert world.balance(campaign_account(campaign_id)) == 0
    returned = world.transfer(RETURN_PREFIX + campaign_id)
    assert (returned.debit_account, returned.amount_points) == (campaign_account(campaign_id), 450)


def test_a_bonus_still_owed_is_paid_before_the_campaign_closes(world: World) -> None:
    campaign_id = world.campaign(bonus_points=50, budget_points=500)
    li = world.resident()
    (offer,) = world.offers(li).offers
    world.accept(li, offer.offer_id)
    world.transit(li, world.now + timedelta(minutes=1))
    world.claim_without_paying()
    world.region.clock.now += close_time(world, campaign_id) + timedelta(minutes=1)

    assert world.incentives.closing.close_finished() == 0  # the owed bonus comes first
    assert world.balance(campaign_account(campaign_id)) == 500

    world.follow()  # pays what is owed, then closes
    closed = the_campaign(world)
    assert (closed.paid_points, closed.returned_points, closed.closed) == (50, 450, True)
    assert world.balance(li) >= 50 and world.balance(campaign_account(campaign_id)) == 0


def test_a_closer_that_died_after_posting_finishes_with_the_same_transfer(world: World) -> None:
    campaign_id = world.campaign(bonus_points=50, budget_points=300)
    world.region.clock.now += close_time(world, campaign_id) + timedelta(minutes=1)
    # A first closer decided the remainder and posted it, then died before marking the campaign returned.
    with world.engine.begin() as conn:
        decided = campaign_store.remainder_to_return(conn, campaign_id, 300)
    with world.engine.connect() as conn:
        (campaign,) = campaign_store.due_to_close(conn, world.now, 10)
    _, _, ledger_address = (running.address for running in world.region.servers)
    (posted,) = LedgerClient(ledger_address, world.settings).post([return_posting(campaign, decided)])
    assert posted.posted and world.balance(campaign_account(campaign_id)) == 0

    assert world.incentives.closing.close_finished() == 1  # the ledger answers ALREADY_POSTED; nothing moves twice
    closed = the_campaign(world)
    assert (closed.closed, closed.returned_points) == (True, 300)
    assert world.balance(campaign_account(campaign_id)) == 0
