"""ListAcceptedEvents: accepted events in acceptance order, paged by token, only once settled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from tests.ingest.ingest_harness import Harness, make_harness


@pytest.fixture
def settled(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(database_url, {"CARBON_INGEST_FOLLOW_SETTLE_MS": "60000"}, data_dir=tmp_path)


def listed(harness: Harness, token: str = "", size: int = 0) -> tuple[list[str], str]:
    page = harness.stub.ListAcceptedEvents(pb.ListAcceptedEventsRequest(page_token=token, page_size=size))
    return [e.event_id for e in page.events], page.next_page_token


def test_events_come_in_acceptance_order_page_by_page_once_settled(settled: Harness) -> None:
    harness = settled
    li, wang = harness.open_account(), harness.open_account()
    harness.register()
    harness.submit([harness.event(li, event_id="a1"), harness.event(wang, event_id="a2")])
    harness.clock.advance(timedelta(seconds=1))
    harness.submit([harness.event(li, event_id="b1")])
    assert listed(harness) == ([], "")  # accepted less than a minute ago: not settled yet
    harness.clock.advance(timedelta(minutes=2))
    first, token = listed(harness, size=2)
    assert sorted(first) == ["a1", "a2"]
    second, token = listed(harness, token, size=2)
    assert second == ["b1"]
    assert listed(harness, token) == ([], token)  # nothing new: the same position back
    page = harness.stub.ListAcceptedEvents(pb.ListAcceptedEventsRequest(page_size=1))
    event = page.events[0]
    assert event.account_number in (li, wang) and event.behaviour == "transit_trip" and event.points == 10


def test_a_token_it_did_not_make_is_invalid_argument(settled: Harness) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        listed(settled, "not-a-token")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
