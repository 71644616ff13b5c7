"""A retried mutation returns exactly what its first call returned, not the current state; a different body under
the same request_id is ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED and changes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from rewards_svc.domain.catalog import Reward
from rewards_svc.domain.vouchers import VoucherState
from rewards_svc.server import RewardsServices
from service_kit.accounts import new_account_number
from service_kit.errors import AlreadyExists
from tests.rewards.conftest import ManualClock
from tests.rewards.rewards_fake_ledger import FakeLedger


def reused(call: object, *args: object) -> str:
    with pytest.raises(AlreadyExists) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.reason


def new_reward(service: RewardsServices, reward_id: str = "new-one") -> Reward:
    return dataclasses.replace(service.catalog.get_reward("museum-free-reservation"), reward_id=reward_id, stock=10)


def test_a_retried_create_returns_the_created_reward_after_later_changes(service: RewardsServices) -> None:
    first = service.catalog.create_reward("c1", new_reward(service))
    service.catalog.update_reward("u1", dataclasses.replace(first, price_points=900), ["price_points"])
    assert service.catalog.create_reward("c1", new_reward(service)) == first
    assert service.catalog.get_reward("new-one").price_points == 900
    assert reused(service.catalog.create_reward, "c1", dataclasses.replace(new_reward(service), stock=11)) == (
        "IDEMPOTENCY_KEY_REUSED"
    )


def test_a_retried_update_returns_its_first_answer_not_the_current_reward(service: RewardsServices) -> None:
    current = service.catalog.get_reward("cinema-ticket-reduction")
    first = service.catalog.update_reward("u1", dataclasses.replace(current, price_points=2500), ["price_points"])
    assert first.price_points == 2500
    service.catalog.update_reward("u2", dataclasses.replace(current, price_points=2600), ["price_points"])
    assert (
        service.catalog.update_reward("u1", dataclasses.replace(current, price_points=2500), ["price_points"]) == first
    )
    assert service.catalog.get_reward("cinema-ticket-reduction").price_points == 2600
    changed = dataclasses.replace(current, price_points=2700)
    assert reused(service.catalog.update_reward, "u1", changed, ["price_points"]) == "IDEMPOTENCY_KEY_REUSED"
    assert reused(service.catalog.update_reward, "u1", current, ["stock"]) == "IDEMPOTENCY_KEY_REUSED"
    assert service.catalog.get_reward("cinema-ticket-reduction").price_points == 2600


def test_a_retried_retire_returns_its_first_answer_and_another_reward_is_a_reused_key(
    service: RewardsServices, clock: ManualClock
) -> None:
    first = service.catalog.retire_reward("x1", "scenic-spot-half-price")
    assert first.retired
    clock.advance(days=1)
    assert service.catalog.retire_reward("x1", "scenic-spot-half-price") == first
    assert reused(service.catalog.retire_reward, "x1", "cinema-ticket-reduction") == "IDEMPOTENCY_KEY_REUSED"
    assert not service.catalog.get_reward("cinema-ticket-reduction").retired


def test_a_retried_use_returns_the_first_answer_after_the_voucher_expired(
    service: RewardsServices, ledger: FakeLedger, clock: ManualClock
) -> None:
    account = new_account_number("330000")
    ledger.fund(account, 1000)
    code = service.redemptions.redeem("r1", account, "museum-free-reservation", 1, "330000").vouchers[0].code
    first = service.vouchers.use_voucher("use-1", code, "museum-7")
    assert (first.state, first.used_at) == (VoucherState.USED, clock.now)
    clock.advance(days=40)
    assert service.vouchers.use_voucher("use-1", code.lower().replace("-", ""), "museum-7") == first
    assert reused(service.vouchers.use_voucher, "use-1", code, "museum-8") == "IDEMPOTENCY_KEY_REUSED"


def test_one_request_id_may_serve_different_operations(service: RewardsServices) -> None:
    created = service.catalog.create_reward("same-id", new_reward(service))
    retired = service.catalog.retire_reward("same-id", "new-one")
    assert (created.retired, retired.retired) == (False, True)
    assert service.catalog.create_reward("same-id", new_reward(service)) == created


def test_a_refused_first_request_keeps_no_key_so_a_corrected_retry_succeeds(service: RewardsServices) -> None:
    taken = new_reward(service, "museum-free-reservation")
    assert reused(service.catalog.create_reward, "c1", taken) == "REWARD_EXISTS"
    assert service.catalog.create_reward("c1", new_reward(service)).reward_id == "new-one"
