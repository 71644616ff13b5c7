"""A retried mutation returns exactly what its first call returned, not the current state; a different body under
the same request_id is ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED and changes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from rewards_svc.domain import Reward, VoucherState
from rewards_svc.service import RewardsService
from service_kit.accounts import new_account_number
from service_kit.errors import AlreadyExists
from tests.rewards.conftest import ManualClock
from tests.rewards.rewards_fake_ledger import FakeLedger


def reused(call: object, *args: object) -> str:
    with pytest.raises(AlreadyExists) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.reason


def new_reward(service: RewardsService, reward_id: str = "new-one") -> Reward:
    return dataclasses.replace(service.get_reward("museum-free-reservation"), reward_id=reward_id, stock=10)


def test_a_retried_create_returns_the_created_reward_after_later_changes(service: RewardsService) -> None:
    first = service.create_reward("c1", new_reward(service))
    service.update_reward("u1", dataclasses.replace(first, price_points=900), ["price_points"])
    assert service.create_reward("c1", new_reward(service)) == first
    assert service.get_reward("new-one").price_points == 900
    assert reused(service.create_reward, "c1", dataclasses.replace(new_reward(service), stock=11)) == (
        "IDEMPOTENCY_KEY_REUSED"
    )


def test_a_retried_update_returns_its_first_answer_not_the_current_reward(service: RewardsService) -> None:
    current = service.get_reward("cinema-ticket-reduction")
    first = service.update_reward("u1", dataclasses.replace(current, price_points=2500), ["price_points"])
    assert first.price_points == 2500
    service.update_reward("u2", dataclasses.replace(current, price_points=2600), ["price_points"])
    assert service.update_reward("u1", dataclasses.replace(current, price_points=2500), ["price_points"]) == first
    assert service.get_reward("cinema-ticket-reduction").price_points == 2600
    changed = dataclasses.replace(current, price_points=2700)
    assert reused(service.update_reward, "u1", changed, ["price_points"]) == "IDEMPOTENCY_KEY_REUSED"
    assert reused(service.update_reward, "u1", current, ["stock"]) == "IDEMPOTENCY_KEY_REUSED"
    assert service.get_reward("cinema-ticket-reduction").price_points == 2600


def test_a_retried_retire_returns_its_first_answer_and_another_reward_is_a_reused_key(
    service: RewardsService, clock: ManualClock
) -> None:
    first = service.retire_reward("x1", "scenic-spot-half-price")
    assert first.retired
    clock.advance(days=1)
    assert service.retire_reward("x1", "scenic-spot-half-price") == first
    assert reused(service.retire_reward, "x1", "cinema-ticket-reduction") == "IDEMPOTENCY_KEY_REUSED"
    assert not service.get_reward("cinema-ticket-reduction").retired


def test_a_retried_use_returns_the_first_answer_after_the_voucher_expired(
    service: RewardsService, ledger: FakeLedger, clock: ManualClock
) -> None:
    account = new_account_number("330000")
    ledger.fund(account, 1000)
    code = service.redeem("r1", account, "museum-free-reservation", 1, "330000").vouchers[0].code
    first = service.use_voucher("use-1", code, "museum-7")
    assert (first.state, first.used_at) == (VoucherState.USED, clock.now)
    clock.advance(days=40)
    assert service.use_voucher("use-1", code.lower().replace("-", ""), "museum-7") == first
    assert reused(service.use_voucher, "use-1", code, "museum-8") == "IDEMPOTENCY_KEY_REUSED"


def test_one_request_id_may_serve_different_operations(service: RewardsService) -> None:
    created = service.create_reward("same-id", new_reward(service))
    retired = service.retire_reward("same-id", "new-one")
    assert (created.retired, retired.retired) == (False, True)
    assert service.create_reward("same-id", new_reward(service)) == created


def test_a_refused_first_request_keeps_no_key_so_a_corrected_retry_succeeds(service: RewardsService) -> None:
    taken = new_reward(service, "museum-free-reservation")
    assert reused(service.create_reward, "c1", taken) == "REWARD_EXISTS"
    assert service.create_reward("c1", new_reward(service)).reward_id == "new-one"
