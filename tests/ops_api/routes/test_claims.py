"""Claim conflicts for ops: two regions' ingests claim the same activities at the gateway; the ops API lists the
conflicts per day and partner pair, for viewers, and refuses a reversed range."""

from __future__ import annotations

import json

from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from service_kit import identities
from service_kit.clock import china_day, system_clock
from tests.ops_api.ops_support import Federation, Ops
from tests.service_identities import TRUST


def _claim(gateway_address: str, region: str, partner: str, fingerprints: list[bytes], day: str) -> None:
    with TRUST.channel(gateway_address, identities.regional(region, "ingest")) as channel:
        gateway_service_pb2_grpc.GatewayServiceStub(channel).ClaimActivities(
            gw.ClaimActivitiesRequest(
                fingerprints=fingerprints,
                key_ids=["k1"] * len(fingerprints),
                occurred_days=[day] * len(fingerprints),
                partner_ids=[partner] * len(fingerprints),
                event_ids=[f"{partner}-{i}" for i in range(len(fingerprints))],
            ),
            timeout=10,
        )


def test_conflicting_claims_are_listed_per_day_and_partner_pair(ops: Ops, federation: Federation) -> None:
    gateway_address = json.loads(federation.registry_path.read_text())["gateway_address"]
    today = china_day(system_clock()).isoformat()
    trips = [bytes([n]) * 32 for n in (1, 2, 3)]
    _claim(gateway_address, "330000", "metro-app", trips, today)
    _claim(gateway_address, "110000", "wallet-app", trips[:2], today)
    listed = ops.get("viewer", "/v1/claim-conflicts", from_day=today, to_day=today)
    reversed_range = ops.get("viewer", "/v1/claim-conflicts", from_day=today, to_day="2020-01-01")
    assert listed.status_code == 200, listed.text
    assert listed.json()["counts"] == [
        {
            "day": today,
            "holder_region": "330000",
            "holder_partner": "metro-app",
            "claimant_region": "110000",
            "claimant_partner": "wallet-app",
            "conflicts": 2,
        }
    ]
    assert reversed_range.status_code == 400
