"""One account's recorded events with their scores (ListAccountEvents, for the person's copy of their data, ADR 0208):
all of them, page by page, and only theirs."""

from __future__ import annotations

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.status import error_details
from tests.ingest.ingest_harness import Harness


def all_events(harness: Harness, account: str, page_size: int) -> list[pb.AccountEvent]:
    found: list[pb.AccountEvent] = []
    token = ""
    while True:
        page = harness.stub.ListAccountEvents(
            pb.ListAccountEventsRequest(account_number=account, page_size=page_size, page_token=token)
        )
        found.extend(page.events)
        token = page.next_page_token
        if not token:
            return found


def test_an_accounts_events_are_listed_with_their_scores_page_by_page(harness: Harness) -> None:
    harness.register()
    li, other = harness.open_account(), harness.open_account()
    harness.submit([harness.event(li, "bike_km", 29_000, event_id=f"ride-{n}") for n in (1, 2)])
    harness.submit([harness.event(li, "transit_trip", 1_000, event_id="trip-1", region="110000")])
    harness.submit([harness.event(other, "transit_trip", 1_000, event_id="trip-other")])
    listed = all_events(harness, li, page_size=2)
    assert [event.event_id for event in listed] == ["ride-1", "ride-2", "trip-1"]
    ride_1, ride_2, _ = listed
    assert (ride_1.behaviour, ride_1.quantity_milli, ride_1.counted_milli) == ("bike_km", 29_000, 29_000)
    assert ride_2.reason == "DAILY_CAP_REACHED" and ride_2.counted_milli == 1_000
    explained = harness.stub.ExplainScore(pb.ExplainScoreRequest(partner_id="bus-co", event_id="ride-2"))
    assert (ride_2.points, ride_2.co2e_grams) == (explained.result.points, explained.result.co2e_grams)
    assert all(event.partner_id == "bus-co" and event.status for event in listed)
    assert [event.event_id for event in all_events(harness, other, page_size=50)] == ["trip-other"]


def test_a_malformed_account_number_or_token_is_refused(harness: Harness) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        harness.stub.ListAccountEvents(pb.ListAccountEventsRequest(account_number="123"))
    assert error_details(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT
    account = harness.open_account()
    with pytest.raises(grpc.RpcError) as caught:
        harness.stub.ListAccountEvents(pb.ListAccountEventsRequest(account_number=account, page_token="nonsense"))
    assert error_details(caught.value).reason == "INVALID_PAGE_TOKEN"
