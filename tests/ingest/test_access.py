"""Partner and rule administration answers the ops API alone: the gateway, the region's own services, another
region's ingest and a caller without identity are refused with the reason, and nothing changes."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from carbon.ingest.v1 import ingest_service_pb2 as pb
from carbon.ingest.v1 import ingest_service_pb2_grpc
from service_kit import identities
from service_kit.status import error_details
from tests.ingest.ingest_harness import START, Harness
from tests.service_identities import TRUST

OUTSIDERS = [
    "",
    identities.GATEWAY,
    identities.regional("110000", "ingest"),
    identities.regional("110000", "rewards"),
    identities.regional("330000", "ingest"),
]


def _as(harness: Harness, spiffe_id: str) -> grpc.Channel:
    address = harness.servers[0].address
    return TRUST.channel(address, spiffe_id) if spiffe_id else grpc.insecure_channel(address)


def _admin_requests() -> dict[str, Any]:
    effective = Timestamp()
    effective.FromDatetime(START)
    partner = pb.Partner(
        partner_id="forged-co",
        name="forged",
        kind=pb.PARTNER_KIND_TRANSIT_OPERATOR,
        allowed_behaviours=["transit_trip"],
        allowed_regions=["110000"],
    )
    rule = pb.RuleVersion(
        behaviour="transit_trip",
        effective_from=effective,
        points_per_unit=10_000,
        co2e_milligrams_per_unit=1,
        co2e_source="forged",
        daily_cap_milli=10_000,
        max_quantity_milli=1000,
    )
    return {
        "RegisterPartner": pb.RegisterPartnerRequest(request_id="forged-reg", partner=partner),
        "RotatePartnerSecret": pb.RotatePartnerSecretRequest(request_id="forged-rot", partner_id="bus-co"),
        "CreateRuleVersion": pb.CreateRuleVersionRequest(request_id="forged-rule", rule=rule),
        "UpdatePartnerBehaviours": pb.UpdatePartnerBehavioursRequest(
            request_id="forged-chg", partner_id="bus-co", allowed_behaviours=["bike_km"]
        ),
    }


def _state(harness: Harness) -> tuple[Any, ...]:
    partners = harness.stub.ListPartners(pb.ListPartnersRequest(page_size=100), timeout=10).partners
    rules = harness.stub.ListRuleVersions(pb.ListRuleVersionsRequest(behaviour="transit_trip", page_size=100))
    return tuple(partners), tuple(rules.rules)


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_only_the_ops_api_administers_partners_and_rules(harness: Harness, caller: str) -> None:
    harness.register()  # bus-co, by the ops API (the harness's allowed caller)
    before = _state(harness)
    expected = (
        ("UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING") if not caller else ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED")
    )
    with _as(harness, caller) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        for method, request in _admin_requests().items():
            with pytest.raises(grpc.RpcError) as refused:
                getattr(stub, method)(request, timeout=10)
            details = error_details(refused.value)
            assert (details.code.name, details.reason) == expected, method
    assert _state(harness) == before
    li = harness.open_account()
    assert harness.submit([harness.event(li)])[0].points == 10  # the old secret and rule still hold


def test_the_ops_api_administers_them(harness: Harness) -> None:
    harness.register()
    with _as(harness, identities.OPS_API) as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        rotated = stub.RotatePartnerSecret(pb.RotatePartnerSecretRequest(request_id="r1", partner_id="bus-co"))
    assert rotated.key_id == "k2"
