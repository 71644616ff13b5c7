"""Rules administration through the server: a version added mid-month scores events by their time, and a region's
extras are listed there only."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from carbon.ingest.v1 import ingest_service_pb2 as pb
from tests.ingest.ingest_harness import START, Harness

A, D, R = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED


def test_a_rule_changed_mid_month_scores_events_by_their_time(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    change = START + timedelta(days=15)
    stamp = Timestamp()
    stamp.FromDatetime(change)
    created = harness.stub.CreateRuleVersion(
        pb.CreateRuleVersionRequest(
            request_id="double-transit",
            rule=pb.RuleVersion(
                behaviour="transit_trip",
                effective_from=stamp,
                points_per_unit=20,
                co2e_milligrams_per_unit=515_500,
                co2e_source="test: a doubled transit rule",
                daily_cap_milli=10_000,
                max_quantity_milli=1000,
            ),
        )
    )
    assert created.rule.rule_version_id.startswith("transit_trip@national@")
    harness.clock.now = change + timedelta(days=2)
    results = harness.submit(
        [harness.event(li, at=change - timedelta(days=1)), harness.event(li, at=change + timedelta(hours=1))]
    )
    assert [r.points for r in results] == [10, 20]


def test_listing_behaviours_includes_a_regions_extras(harness: Harness) -> None:
    zhejiang = harness.stub.ListBehaviours(pb.ListBehavioursRequest(region_code="330000", page_size=500))
    codes = {b.code for b in zhejiang.behaviours}
    assert "water_governance_volunteer" in codes and "recycling_kg" not in codes


def test_the_rule_in_force_in_a_region_is_its_own_else_the_national_one(harness: Harness) -> None:
    """ListRuleVersions with in_force answers which version scores an event now (issue 20): filtering by region alone
    lists only that region's own versions and leaves out the national rule in force there."""
    change = START + timedelta(days=15)
    stamp = Timestamp()
    stamp.FromDatetime(change)
    harness.stub.CreateRuleVersion(
        pb.CreateRuleVersionRequest(
            request_id="shanghai-transit",
            rule=pb.RuleVersion(
                behaviour="transit_trip",
                region_code="310000",
                effective_from=stamp,
                points_per_unit=30,
                co2e_milligrams_per_unit=515_500,
                co2e_source="test: a Shanghai transit rule",
            ),
        )
    )

    def in_force(region: str) -> list[str]:
        request = pb.ListRuleVersionsRequest(behaviour="transit_trip", region_code=region, in_force=True)
        return [rule.rule_version_id for rule in harness.stub.ListRuleVersions(request).rules]

    assert in_force("310000") == [in_force("110000")[0]]  # before the change: the national rule, in both regions
    assert in_force("310000")[0].startswith("transit_trip@national@")
    harness.clock.now = change + timedelta(hours=1)
    assert in_force("310000")[0].startswith("transit_trip@310000@")
    assert in_force("110000")[0].startswith("transit_trip@national@")
    everything = harness.stub.ListRuleVersions(pb.ListRuleVersionsRequest(region_code="110000", in_force=True))
    assert len({rule.behaviour for rule in everything.rules}) == len(everything.rules) > 1
