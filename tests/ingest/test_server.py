"""The gRPC surface: list calls page as every service does, and a batch refused mid-stream reports what the batches
before it committed."""

from __future__ import annotations

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.status import error_details
from tests.ingest.ingest_harness import Harness


def test_list_calls_page_as_every_service_does(harness: Harness) -> None:
    """0 is the default page, above the maximum is clamped, a negative size is refused (service_kit.paging)."""
    everything = harness.stub.ListBehaviours(pb.ListBehavioursRequest(region_code="330000", page_size=10_000))
    assert len(everything.behaviours) > 2 and not everything.next_page_token
    first = harness.stub.ListBehaviours(pb.ListBehavioursRequest(region_code="330000", page_size=2))
    assert len(first.behaviours) == 2 and first.next_page_token
    with pytest.raises(grpc.RpcError) as refused:
        harness.stub.ListPartners(pb.ListPartnersRequest(page_size=-1))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in error_details(refused.value).message


def test_a_bad_batch_mid_stream_reports_what_the_batches_before_it_committed(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    first = harness.request([harness.event(li), harness.event(li)], batch_id="s1")
    forged = harness.request([harness.event(li)], batch_id="s2")
    forged.signature = "00" * 32
    never_read = harness.request([harness.event(li)], batch_id="s3")
    stream = (pb.StreamEventsRequest(batch=b) for b in (first, forged, never_read))
    with pytest.raises(grpc.RpcError) as raised:
        harness.stub.StreamEvents(stream)
    details = error_details(raised.value)
    assert (details.code, details.reason) == (grpc.StatusCode.UNAUTHENTICATED, "BAD_SIGNATURE")
    assert details.metadata == {
        "batches_committed": "1",
        "accepted": "2",
        "duplicates": "0",
        "rejected": "0",
        "points": "20",
        "failed_batch_index": "1",
        "failed_batch_id": "s2",
    }
    assert harness.ledger.balance(li) == 20, "the batch before the bad one is committed and credited"
