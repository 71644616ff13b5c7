"""Changing what a registered partner may report (UpdatePartnerBehaviours): the change applies to the next batch,
is kept with the list before it, a retry answers as the change did without undoing a later one, and a bad change
changes nothing."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from carbon.ingest.v1 import ingest_service_pb2 as pb
from service_kit.status import error_details
from tests.ingest.ingest_harness import Harness

A, R = pb.EVENT_OUTCOME_ACCEPTED, pb.EVENT_OUTCOME_REJECTED


def _change(harness: Harness, request_id: str, behaviours: list[str], partner_id: str = "bus-co") -> Any:
    request = pb.UpdatePartnerBehavioursRequest(
        request_id=request_id, partner_id=partner_id, allowed_behaviours=behaviours, reason="catalog gained it"
    )
    return harness.stub.UpdatePartnerBehaviours(request, timeout=10)


def _allowed(harness: Harness, partner_id: str = "bus-co") -> list[str]:
    return list(
        harness.stub.GetPartner(pb.GetPartnerRequest(partner_id=partner_id), timeout=10).partner.allowed_behaviours
    )


def test_a_partner_allowed_a_new_behaviour_scores_it_from_the_next_batch(harness: Harness) -> None:
    harness.register(behaviours=("transit_trip",))
    li = harness.open_account()
    refused = harness.submit([harness.event(li, behaviour="bike_km")])[0]
    assert (refused.outcome, refused.reason) == (R, "BEHAVIOUR_NOT_ALLOWED_FOR_PARTNER")

    changed = _change(harness, "chg-1", ["transit_trip", "bike_km", "bike_km"])

    assert list(changed.previous_behaviours) == ["transit_trip"]
    assert list(changed.partner.allowed_behaviours) == ["bike_km", "transit_trip"]
    assert changed.partner.active_key_id == "k1"  # keys untouched: the partner keeps signing as before
    accepted = harness.submit([harness.event(li, behaviour="bike_km")])[0]
    assert accepted.outcome == A and accepted.points > 0


def test_a_retried_change_answers_as_before_and_does_not_undo_a_later_one(harness: Harness) -> None:
    harness.register(behaviours=("transit_trip",))
    first = _change(harness, "chg-1", ["transit_trip", "bike_km"])
    _change(harness, "chg-2", ["bike_km"])

    retried = _change(harness, "chg-1", ["transit_trip", "bike_km"])

    assert list(retried.previous_behaviours) == list(first.previous_behaviours) == ["transit_trip"]
    assert _allowed(harness) == ["bike_km"]
    with pytest.raises(grpc.RpcError) as reused:
        _change(harness, "chg-1", ["transit_trip"])
    details = error_details(reused.value)
    assert (details.code, details.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.parametrize(
    ("request_id", "behaviours", "field"),
    [
        ("", ["bike_km"], "request_id"),
        ("chg-x", [], "allowed_behaviours"),
        ("chg-y", ["moon_walk"], "allowed_behaviours"),
    ],
)
def test_a_bad_change_names_its_field_and_changes_nothing(
    harness: Harness, request_id: str, behaviours: list[str], field: str
) -> None:
    harness.register(behaviours=("transit_trip",))
    with pytest.raises(grpc.RpcError) as refused:
        _change(harness, request_id, behaviours)
    details = error_details(refused.value)
    assert (details.code, details.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    assert _allowed(harness) == ["transit_trip"]


def test_an_unknown_partner_is_not_found(harness: Harness) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        _change(harness, "chg-1", ["bike_km"], partner_id="nobody")
    assert error_details(refused.value).reason == "PARTNER_NOT_FOUND"
