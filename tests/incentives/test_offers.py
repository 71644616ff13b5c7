"""The issue's "done when", end to end: ingest accepts events, incentives follows them into profiles, offers and
explains, pays bonuses through the real ledger."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from carbon.incentives.v1 import incentives_service_pb2 as pb
from incentives_svc.domain.campaigns import TargetKind
from incentives_svc.store.tables import cursors
from service_kit.accounts import campaign_account
from tests.incentives.incentives_harness import World


def test_a_profile_is_built_from_the_residents_own_events_only(world: World) -> None:
    li, wang = world.resident(), world.resident()
    start = world.now
    world.transit(li, start, start + timedelta(days=1), start + timedelta(days=2))
    world.transit(wang, start + timedelta(days=2, hours=1), behaviour="bike_km")
    assert world.follow() == 4
    li_profile = world.stub.GetProfile(pb.GetProfileRequest(account_number=li))
    wang_profile = world.stub.GetProfile(pb.GetProfileRequest(account_number=wang))
    assert [(h.behaviour, h.events) for h in li_profile.habits] == [("transit_trip", 3)]
    assert [(h.behaviour, h.events) for h in wang_profile.habits] == [("bike_km", 1)]


def test_offers_rest_on_the_residents_own_history(world: World) -> None:
    world.campaign(TargetKind.NEVER_TRIED, behaviour="bike_km", name="try a bike")
    world.campaign(TargetKind.LAPSED, days=7, name="back on the bus")
    li, wang = world.resident(), world.resident()
    start = world.now
    world.transit(li, start)  # li rode the bus once, then nothing for ten days
    world.transit(wang, start, behaviour="bike_km")  # wang rides bikes, never the bus
    world.region.clock.now = start + timedelta(days=10)
    world.follow()
    li_offers = {o.campaign_name: o for o in world.offers(li).offers}
    wang_offers = {o.campaign_name: o for o in world.offers(wang).offers}
    assert set(li_offers) == {"try a bike", "back on the bus"}
    assert set(wang_offers) == {"back on the bus"}  # wang has tried a bike: his own history, not li's
    day = (start + timedelta(hours=8)).date().isoformat()
    assert li_offers["back on the bus"].explanation.facts[0].text == (
        f"You last did transit_trip on {day}, 10 days ago."
    )
    assert wang_offers["back on the bus"].explanation.facts[0].kind == "NEVER_DONE"


def test_the_explanation_names_real_facts_and_the_rule(world: World) -> None:
    world.campaign(TargetKind.WEEKDAY_REGULAR, weekdays=3, name="commuters")
    li = world.resident()
    start = world.now  # 2026-03-01 12:00 CST is a Sunday
    weekdays = [start + timedelta(days=d) for d in (1, 2, 3, 4)]  # Monday to Thursday, 12:00 CST
    world.transit(li, *weekdays)
    world.follow()
    (offer,) = world.offers(li).offers
    explained = world.stub.ExplainOffer(pb.ExplainOfferRequest(account_number=li, offer_id=offer.offer_id)).offer
    texts = [fact.text for fact in explained.explanation.facts]
    assert texts == [
        "You did transit_trip on 4 weekdays of the last 28 days.",
        "Most of your low-carbon actions happen around 12:00.",
    ]
    assert "on at least 3 weekdays of the last 28 days" in explained.explanation.rule
    assert texts[0] in explained.explanation.summary


def test_an_opted_out_resident_gets_no_targeted_offer_and_loses_the_profile(world: World) -> None:
    world.campaign(TargetKind.LAPSED, days=1, name="targeted")
    world.campaign(TargetKind.EVERYONE, name="for everyone")
    li = world.resident()
    world.transit(li, world.now)
    world.region.clock.now += timedelta(days=3)
    world.follow()
    assert {o.campaign_name for o in world.offers(li).offers} == {"targeted", "for everyone"}
    switched = world.stub.SetPersonalisation(
        pb.SetPersonalisationRequest(request_id="off-1", account_number=li, enabled=False)
    )
    assert switched.profile_deleted
    answer = world.offers(li)
    assert [o.campaign_name for o in answer.offers] == ["for everyone"] and not answer.personalised
    with pytest.raises(grpc.RpcError) as missing:
        world.stub.GetProfile(pb.GetProfileRequest(account_number=li))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    world.transit(li, world.now)  # new events build no new profile
    world.follow()
    with pytest.raises(grpc.RpcError):
        world.stub.GetProfile(pb.GetProfileRequest(account_number=li))


def test_a_withdrawn_consent_deletes_the_profile_at_the_next_look(world: World) -> None:
    world.campaign(TargetKind.NEVER_TRIED, behaviour="bike_km", name="try a bike")
    li = world.resident()
    world.transit(li, world.now)
    world.follow()
    assert world.offers(li).personalised
    world.revoke_personalisation(li)
    assert not world.offers(li).personalised
    with pytest.raises(grpc.RpcError) as missing:
        world.stub.GetProfile(pb.GetProfileRequest(account_number=li))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_residents_without_consent_and_minors_are_never_profiled(world: World) -> None:
    world.campaign(TargetKind.NEVER_TRIED, behaviour="bike_km", name="try a bike")
    world.campaign(TargetKind.EVERYONE, name="for everyone")
    child, unconsented = world.resident(), world.resident(personalised=False)
    world.region.fake_identity.minors.add(child)
    world.transit(child, world.now)
    world.transit(unconsented, world.now)
    world.follow()
    for account in (child, unconsented):
        with pytest.raises(grpc.RpcError):
            world.stub.GetProfile(pb.GetProfileRequest(account_number=account))
        assert [o.campaign_name for o in world.offers(account).offers] == ["for everyone"]


def test_an_adult_is_asked_about_once_and_a_minor_again_until_they_come_of_age(world: World) -> None:
    adult, child = world.resident(), world.resident()
    world.region.fake_identity.minors.add(child)
    asked = world.region.fake_identity.calls
    for day in range(3):
        world.transit(adult, world.now + timedelta(days=day))
        world.transit(child, world.now + timedelta(minutes=1))
        before = asked["account"]
        world.follow()
        assert asked["account"] - before == (2 if day == 0 else 1)  # the child each time, the adult only the first
    with pytest.raises(grpc.RpcError):
        world.stub.GetProfile(pb.GetProfileRequest(account_number=child))
    world.region.fake_identity.minors.discard(child)  # the 14th birthday
    world.transit(child, world.now + timedelta(minutes=1))
    world.follow()
    assert [h.behaviour for h in world.stub.GetProfile(pb.GetProfileRequest(account_number=child)).habits] == [
        "transit_trip"
    ]


def test_a_fulfilled_offer_credits_its_bonus_once_traceable_to_its_event(world: World) -> None:
    campaign_id = world.campaign(TargetKind.EVERYONE, bonus_points=50, budget_points=500)
    li = world.resident()
    (offer,) = world.offers(li).offers
    assert world.accept(li, offer.offer_id).state == pb.OFFER_STATE_ACCEPTED
    world.transit(li, world.now + timedelta(minutes=1), world.now + timedelta(minutes=30))
    world.follow()
    (paid,) = world.offers(li).offers
    assert paid.state == pb.OFFER_STATE_FULFILLED and paid.paid_points == 50
    assert world.balance(li) == 10 + 10 + 50  # two trips, one bonus
    bonus = world.transfer(paid.bonus_transfer_id)
    assert bonus.credit_account == li and bonus.amount_points == 50
    assert bonus.reference == f"event {paid.fulfilled_by_event}" and bonus.metadata["offer_id"] == offer.offer_id
    # Replayed from the start: nothing is claimed or paid again.
    with world.engine.begin() as conn:
        conn.execute(cursors.delete())
    world.follow()
    assert world.incentives.payments.pay_owed() == 0
    assert world.balance(li) == 70
    assert world.balance(campaign_account(campaign_id)) == 450
    (campaign,) = world.stub.ListCampaigns(pb.ListCampaignsRequest()).campaigns
    assert (campaign.paid_points, campaign.bonuses_paid) == (50, 1)
