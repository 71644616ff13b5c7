"""Admission of a batch as a whole: the partner's signature over the canonical bytes (any changed field breaks it),
unknown partners, rotated keys within their grace period, and the rate limit."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.partner_signing import SignedEvent, canonical_bytes, sign, signature_matches
from service_kit.status import error_details
from tests.ingest.examples import ACCOUNT
from tests.ingest.ingest_harness import Harness

A, D, R = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_DUPLICATE, pb.EVENT_OUTCOME_REJECTED


def _signed(event_id: str = "e1", quantity: int = 1000) -> SignedEvent:
    return SignedEvent(
        event_id, "account_number", (ACCOUNT,), "transit_trip", quantity, 1_700_000_000, 5, "110000", "", ""
    )


def test_a_signature_verifies_and_any_changed_field_breaks_it() -> None:
    canonical = canonical_bytes("bus-co", "b1", [_signed()])
    signature = sign(b"secret", canonical)
    assert signature_matches(b"secret", canonical, signature)
    assert not signature_matches(b"other", canonical, signature)
    assert not signature_matches(b"secret", canonical_bytes("bus-co", "b1", [_signed(quantity=2000)]), signature)
    assert not signature_matches(b"secret", canonical, "zz")


def test_the_encoding_is_length_prefixed_so_fields_cannot_slide() -> None:
    assert canonical_bytes("ab", "c", []) != canonical_bytes("a", "bc", [])


def test_a_wrong_signature_is_refused_and_records_nothing(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    request = harness.request([harness.event(li)])
    request.events[0].quantity_milli = 2000  # tampered after signing
    with pytest.raises(grpc.RpcError) as caught:
        harness.stub.SubmitEvents(request)
    details = error_details(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.UNAUTHENTICATED, "BAD_SIGNATURE")
    assert harness.ledger.calls == 0


def test_an_unknown_partner_is_refused(harness: Harness) -> None:
    harness.register()
    harness.partner_id = "nobody"
    with pytest.raises(grpc.RpcError) as caught:
        harness.submit([])
    assert error_details(caught.value).reason == "UNKNOWN_PARTNER"


def test_a_rotated_key_keeps_working_for_the_grace_period_only(harness: Harness) -> None:
    harness.register()
    li = harness.open_account()
    old_secret = harness.secret
    rotated = harness.stub.RotatePartnerSecret(pb.RotatePartnerSecretRequest(request_id="r1", partner_id="bus-co"))
    assert rotated.key_id == "k2"
    assert harness.submit([harness.event(li)])[0].outcome == A  # still signed with k1
    harness.clock.advance(timedelta(hours=25))
    with pytest.raises(grpc.RpcError) as caught:
        harness.submit([harness.event(li)])
    assert error_details(caught.value).reason == "UNKNOWN_KEY"
    harness.key_id, harness.secret = rotated.key_id, rotated.secret
    assert harness.submit([harness.event(li)])[0].outcome == A
    assert old_secret != rotated.secret


def test_a_rotation_request_id_reused_for_another_partner_is_already_exists(harness: Harness) -> None:
    harness.register("bus-co")
    harness.register("bike-co")
    harness.stub.RotatePartnerSecret(pb.RotatePartnerSecretRequest(request_id="r1", partner_id="bus-co"))
    with pytest.raises(grpc.RpcError) as caught:
        harness.stub.RotatePartnerSecret(pb.RotatePartnerSecretRequest(request_id="r1", partner_id="bike-co"))
    details = error_details(caught.value)
    assert (details.code, details.reason, details.metadata["field"]) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
        "request_id",
    )


def test_a_rate_limited_partner_is_told_to_back_off(harness: Harness) -> None:
    harness.register(rate=1)  # burst of 10 events
    li = harness.open_account()
    harness.submit([harness.event(li) for _ in range(10)])
    with pytest.raises(grpc.RpcError) as caught:
        harness.submit([harness.event(li), harness.event(li)])
    refused = error_details(caught.value)
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.retry_delay == timedelta(seconds=2)  # two events at one a second
