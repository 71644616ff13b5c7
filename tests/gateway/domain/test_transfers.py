"""The cross-region transfer's rules: which step follows which state and decision, derived ids, deadlines, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.transfers import (
    ClearingReference,
    Decision,
    State,
    Step,
    Timing,
    TransferRequest,
    call_deadline,
    new_transfer,
    next_step,
    parse_reference,
    reference,
    retry_delay,
)
from service_kit.accounts import new_account_number

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
REQUEST = TransferRequest("t1", new_account_number("330000"), new_account_number("110000"), 400)


@pytest.mark.parametrize(
    ("state", "decision", "step"),
    [
        (State.CREATED, Decision.NONE, Step.HOLD),
        (State.HELD, Decision.NONE, Step.DECIDE),
        (State.HELD, Decision.COMMIT, Step.CREDIT),
        (State.CREATED, Decision.ABORT, Step.RELEASE),
        (State.HELD, Decision.ABORT, Step.RELEASE),
        (State.CREDITED, Decision.COMMIT, Step.COMMIT),
        (State.CREDITED, Decision.REVERSE, Step.REVERSE),
    ],
)
def test_the_next_step_follows_from_the_state_and_the_durable_decision(
    state: State, decision: Decision, step: Step
) -> None:
    transfer = new_transfer(REQUEST, "zj", NOW, Timing())
    transfer.state, transfer.decision = state, decision
    assert next_step(transfer) is step


def test_a_state_the_protocol_never_reaches_has_no_step() -> None:
    transfer = new_transfer(REQUEST, "zj", NOW, Timing())
    transfer.state, transfer.decision = State.CREDITED, Decision.ABORT
    with pytest.raises(AssertionError, match="no step"):
        next_step(transfer)


def test_a_new_transfer_holds_for_its_whole_life_and_carries_the_given_lots() -> None:
    transfer = new_transfer(REQUEST, "zj", NOW, Timing(transfer_life=timedelta(seconds=60)))
    assert (transfer.state, transfer.decision, transfer.expires_at) == (
        State.CREATED,
        Decision.NONE,
        NOW + timedelta(seconds=60),
    )
    assert transfer.hold_timeout_ms == 60_000 and transfer.carry_lots == []


def test_a_reference_names_the_source_region_then_the_destination_then_the_transfer() -> None:
    parsed = parse_reference(reference(REQUEST))
    assert parsed == ClearingReference("330000", "110000", "t1")
    assert parsed is not None and (parsed.from_region, parsed.to_region, parsed.transfer_id) == (
        "330000",
        "110000",
        "t1",
    )
    assert parse_reference("ops-adjustment:1") is None
    assert parse_reference("xrt/zj/bj/t1") is None


def test_a_call_ends_a_margin_before_the_hold_expires() -> None:
    timing = Timing(call_timeout=timedelta(seconds=5), margin=timedelta(seconds=2))
    assert call_deadline(NOW, None, timing) == 5.0
    assert call_deadline(NOW, NOW + timedelta(seconds=4), timing) == 2.0
    assert call_deadline(NOW, NOW + timedelta(seconds=1), timing) == 0.0


def test_retries_back_off_by_doubling_up_to_the_cap() -> None:
    cap = timedelta(seconds=30)
    assert [retry_delay(attempts, cap) for attempts in (0, 1, 2)] == [
        timedelta(milliseconds=200), timedelta(milliseconds=400), timedelta(milliseconds=800),
    ]  # fmt: skip
    assert retry_delay(20, cap) == cap
