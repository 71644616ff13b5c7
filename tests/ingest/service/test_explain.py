"""Explaining a stored event's score: the rule, its factor and source, and the cap state of its day."""

from __future__ import annotations

from carbon.common.v1 import common_pb2
from carbon.ingest.v1 import ingest_service_pb2 as pb
from tests.ingest.ingest_harness import Harness

A, D, R = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED


def test_explain_score_names_rule_factor_and_cap_state(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    harness.submit([harness.event(li, "bike_km", 29_000, event_id="ride-1")])
    harness.submit([harness.event(li, "bike_km", 5_000, event_id="ride-2")])
    explained = harness.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="bus-co", event_id="ride-2"))
    assert explained.result.points == 3 and explained.result.reason == "DAILY_CAP_REACHED"
    assert explained.cap_per_day == 30_000 and explained.counted_before_today == 29_000
    assert explained.co2e_factor.startswith("104.7 g") and "UK government" in explained.co2e_source
    assert explained.consent_allowed


def test_explain_score_names_the_consent_category_the_catalog_gives_the_behaviour(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    harness.submit([harness.event(li, "bike_km", 2_000, event_id="ride-1")])
    explained = harness.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="bus-co", event_id="ride-1"))
    listed = harness.stub.ListBehaviours(pb.ListBehavioursRequest(region_code=harness.region, page_size=500))
    [bike] = [behaviour for behaviour in listed.behaviours if behaviour.code == "bike_km"]
    assert explained.consent_category == bike.category == common_pb2.DATA_CATEGORY_CYCLING
    assert explained.consent_reason.startswith("CYCLING consent")
