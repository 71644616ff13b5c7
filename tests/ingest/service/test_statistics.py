"""Daily statistics: events, points and grams of CO2e summed by region, behaviour and day."""

from __future__ import annotations

from carbon.ingest.v1 import ingest_service_pb2 as pb
from tests.ingest.ingest_harness import Harness

A, D, R = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED


def test_statistics_sum_points_and_co2e_by_region_behaviour_and_day(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    harness.submit([harness.event(li), harness.event(li), harness.event(li, "bike_km", 2000)])
    rows = harness.stub.GetStatistics(pb.GetStatisticsRequest(region_code="110000")).rows
    by_behaviour = {r.behaviour: (r.events, r.points, r.co2e_grams) for r in rows}
    assert by_behaviour == {"transit_trip": (2, 20, 1030), "bike_km": (1, 6, 209)}
