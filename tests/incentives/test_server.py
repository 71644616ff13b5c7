"""The gRPC surface of incentives: bad input named, idempotent mutations, who may call."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from carbon.incentives.v1 import incentives_service_pb2 as pb
from carbon.incentives.v1 import incentives_service_pb2_grpc as pb_grpc
from incentives_svc.domain.campaigns import campaign_id_for
from service_kit import identities
from service_kit.status import error_details
from service_kit.wire import to_timestamp
from tests.incentives.incentives_harness import World
from tests.service_identities import TRUST


def campaign_message(world: World, **changes: object) -> pb.Campaign:
    message = pb.Campaign(
        name="back on the bus",
        behaviour="transit_trip",
        bonus_points=50,
        target=pb.TargetRule(kind=pb.TARGET_KIND_LAPSED, days=7),
        starts_at=to_timestamp(world.now),
        ends_at=to_timestamp(world.now + timedelta(days=14)),
        budget_points=5_000,
    )
    for name, value in changes.items():
        setattr(message, name, value)
    return message


def refusal(call: object, request: object) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call(request)  # type: ignore[operator]
    details = error_details(refused.value)
    return details.code, details.reason, details.metadata.get("field", "")


def test_create_campaign_funds_once_and_refuses_a_reused_request_id(world: World) -> None:
    create = world.stub.CreateCampaign
    first = create(pb.CreateCampaignRequest(request_id="r1", campaign=campaign_message(world))).campaign
    again = create(pb.CreateCampaignRequest(request_id="r1", campaign=campaign_message(world))).campaign
    assert first == again and first.funded and first.budget_account == f"campaign:{first.campaign_id}"
    assert world.balance(first.budget_account) == 5_000
    other = pb.CreateCampaignRequest(request_id="r1", campaign=campaign_message(world, budget_points=1))
    assert refusal(create, other)[:2] == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "campaign.name"),
        ({"bonus_percent": 10}, "campaign.bonus_points"),
        ({"budget_points": -5}, "campaign.budget_points"),
    ],
)
def test_a_bad_campaign_is_invalid_argument_naming_the_field(
    world: World, changes: dict[str, object], field: str
) -> None:
    request = pb.CreateCampaignRequest(request_id="r2", campaign=campaign_message(world, **changes))
    code, _, named = refusal(world.stub.CreateCampaign, request)
    assert (code, named) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    assert world.stub.ListCampaigns(pb.ListCampaignsRequest()).campaigns == []


def test_a_campaign_for_a_behaviour_the_catalog_does_not_score_is_refused_and_funds_nothing(world: World) -> None:
    request = pb.CreateCampaignRequest(request_id="r4", campaign=campaign_message(world, behaviour="teleport_trip"))
    assert refusal(world.stub.CreateCampaign, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_BEHAVIOUR",
        "campaign.behaviour",
    )
    assert world.stub.ListCampaigns(pb.ListCampaignsRequest()).campaigns == []
    assert world.balance("campaign:" + campaign_id_for(world.settings.region_code, "r4")) == 0


def test_bad_account_numbers_and_unknown_offers_are_refused_with_reasons(world: World) -> None:
    code, reason, field = refusal(world.stub.ListOffers, pb.ListOffersRequest(account_number="12345"))
    assert (code, reason, field) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ACCOUNT_NUMBER", "account_number")
    li = world.resident()
    request = pb.AcceptOfferRequest(request_id="a1", account_number=li, offer_id="off-nothing")
    assert refusal(world.stub.AcceptOffer, request)[:2] == (grpc.StatusCode.NOT_FOUND, "OFFER_NOT_FOUND")


def test_accepting_twice_is_one_acceptance_and_a_reused_request_id_is_refused(world: World) -> None:
    world.campaign(name="for everyone")
    world.campaign(name="another", bonus_points=20)
    li = world.resident()
    first, second = world.offers(li).offers
    accept = pb.AcceptOfferRequest(request_id="a1", account_number=li, offer_id=first.offer_id)
    assert world.stub.AcceptOffer(accept).offer == world.stub.AcceptOffer(accept).offer
    reused = pb.AcceptOfferRequest(request_id="a1", account_number=li, offer_id=second.offer_id)
    assert refusal(world.stub.AcceptOffer, reused)[:2] == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    states = {o.offer_id: o.state for o in world.offers(li).offers}
    assert states == {first.offer_id: pb.OFFER_STATE_ACCEPTED, second.offer_id: pb.OFFER_STATE_OFFERED}


def test_set_personalisation_is_idempotent_by_request_id(world: World) -> None:
    li = world.resident()
    off = pb.SetPersonalisationRequest(request_id="p1", account_number=li, enabled=False)
    assert world.stub.SetPersonalisation(off) == world.stub.SetPersonalisation(off)
    on = pb.SetPersonalisationRequest(request_id="p1", account_number=li, enabled=True)
    assert refusal(world.stub.SetPersonalisation, on)[:2] == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


def test_only_the_ops_api_creates_campaigns(world: World) -> None:
    gateway = pb_grpc.IncentivesServiceStub(TRUST.channel(world.server.address, identities.GATEWAY))
    request = pb.CreateCampaignRequest(request_id="r3", campaign=campaign_message(world))
    code, reason, _ = refusal(gateway.CreateCampaign, request)
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    assert gateway.ListOffers(pb.ListOffersRequest(account_number=world.resident())).offers == []
