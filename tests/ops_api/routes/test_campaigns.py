"""Incentive campaigns through the ops API: operators create them (budget funded in the region's ledger), anyone
staff lists them with their spend, a national campaign lands in every region."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from carbon.incentives.v1 import incentives_service_pb2 as npb
from carbon.incentives.v1 import incentives_service_pb2_grpc
from service_kit.channels import open_channel
from service_kit.status import error_details
from service_kit.topology import Registry
from tests.ops_api.ops_support import GATEWAY_KEY, Ops

NOW = datetime.now(UTC)


def campaign(name: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": name,
        "behaviour": "transit_trip",
        "bonus_points": 50,
        "target": "LAPSED",
        "target_days": 7,
        "starts_at": NOW.isoformat(),
        "ends_at": (NOW + timedelta(days=14)).isoformat(),
        "budget_points": 20_000,
    }
    return {**body, **changes}


def test_an_operator_creates_a_funded_campaign_that_staff_see_with_its_spend(ops: Ops) -> None:
    created = ops.post("op1", "/v1/regions/330000/campaigns", campaign("back on the bus"))
    assert created.status_code == 201, created.text
    made = created.json()["campaign"]
    assert made["funded"] is True and made["budget_account"] == f"campaign:{made['campaign_id']}"
    assert made["target"]["kind"] == "TARGET_KIND_LAPSED"
    listed = ops.get("viewer", "/v1/regions/330000/campaigns").json()["campaigns"]
    mine = next(c for c in listed if c["campaign_id"] == made["campaign_id"])
    assert (mine["budget_points"], mine["paid_points"], mine["bonuses_paid"]) == (20_000, 0, 0)
    assert ops.post("viewer", "/v1/regions/330000/campaigns", campaign("not mine")).status_code == 403


def test_a_bad_campaign_is_refused_before_any_region_is_called(ops: Ops) -> None:
    too_early = campaign("backwards", ends_at=(NOW - timedelta(days=1)).isoformat())
    refused = ops.post("op1", "/v1/regions/330000/campaigns", too_early)
    assert refused.status_code == 400, refused.text
    assert ops.post("op1", "/v1/regions/330000/campaigns", campaign("x", target="NOBODY")).status_code == 422


def test_a_national_campaign_is_created_in_every_region_with_its_own_budget(ops: Ops) -> None:
    created = ops.post("op1", "/v1/campaigns", campaign("national bike week", behaviour="bike_km", target="EVERYONE"))
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["region_codes"] == sorted(answer["region_codes"]) and len(answer["region_codes"]) >= 2
    accounts = {c["budget_account"] for c in answer["campaigns"]}
    assert len(accounts) == len(answer["region_codes"])
    assert {c["scope"] for c in answer["campaigns"]} == {"CAMPAIGN_SCOPE_NATIONAL"}


def test_a_residents_offers_are_served_through_the_gateway_and_campaigns_are_not(ops: Ops) -> None:
    made = ops.post("op1", "/v1/regions/330000/campaigns", campaign("for all", target="EVERYONE")).json()["campaign"]
    resident = ops.open_account()
    gateway = Registry.load(ops.federation.registry_path).gateway_address
    key = (("authorization", f"Bearer {GATEWAY_KEY}"),)
    with open_channel(gateway) as channel:
        stub = incentives_service_pb2_grpc.IncentivesServiceStub(channel)
        request = npb.ListOffersRequest(account_number=resident, max_results=10)
        offers = stub.ListOffers(request, metadata=key, timeout=10).offers
        assert made["campaign_id"] in [offer.campaign_id for offer in offers]
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListCampaigns(npb.ListCampaignsRequest(), metadata=key, timeout=10)
    assert error_details(refused.value).reason == "METHOD_NOT_SERVED_BY_GATEWAY"


def test_counter_staff_see_a_residents_offers_and_accept_one_for_them(ops: Ops) -> None:
    made = ops.post("op1", "/v1/regions/330000/campaigns", campaign("plant a tree", behaviour="tree_planting",
                                                                     target="EVERYONE")).json()["campaign"]  # fmt: skip
    resident = ops.open_account()
    offers = ops.get("zj-staff", f"/v1/accounts/{resident}/offers")
    assert offers.status_code == 200, offers.text
    offer = next(o for o in offers.json()["offers"] if o["campaign_id"] == made["campaign_id"])
    assert offer["state"] == "OFFER_STATE_OFFERED" and offer["explanation"]["rule"]
    path = f"/v1/accounts/{resident}/offers/{offer['offer_id']}/accept"

    refused = ops.post("viewer", path)
    accepted = ops.post("zj-staff", path)

    assert refused.status_code == 403
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["offer"]["state"] == "OFFER_STATE_ACCEPTED"
    unknown = ops.post("zj-staff", f"/v1/accounts/{resident}/offers/off-000000000000000000000000/accept")
    assert unknown.status_code == 404 and unknown.json()["reason"] == "OFFER_NOT_FOUND"
