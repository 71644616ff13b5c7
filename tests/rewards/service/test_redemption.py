"""Redeem against a real database (SQLite and PostgreSQL) with an in-memory ledger: hold, vouchers, commit;
retries, refusals, limits, stock and prices."""

from __future__ import annotations

import dataclasses

import pytest

from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.domain.vouchers import VoucherState
from rewards_svc.server import RewardsServices
from service_kit.errors import AlreadyExists, InvalidArgument, NotFound
from tests.rewards.conftest import ManualClock, funded, refusal
from tests.rewards.rewards_fake_ledger import FakeLedger


def test_redeem_holds_issues_and_commits(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 1500)
    redemption = service.redemptions.redeem("r1", account, "museum-free-reservation", 1, "330000")
    assert redemption.state == RedemptionState.COMPLETED
    assert len(redemption.vouchers) == 1 and redemption.vouchers[0].state == VoucherState.ISSUED
    assert ledger.balances[account] == 1000
    assert ledger.balances["system:redemption"] == 500


def test_a_retry_returns_the_first_result_and_a_reused_key_is_refused(
    service: RewardsServices, ledger: FakeLedger
) -> None:
    account = funded(ledger, "330000", 5000)
    first = service.redemptions.redeem("r1", account, "transit-topup", 10, "330000")
    assert service.redemptions.redeem("r1", account, "transit-topup", 10, "330000") == first
    assert ledger.balances[account] == 4000
    with pytest.raises(AlreadyExists) as reused:
        service.redemptions.redeem("r1", account, "transit-topup", 11, "330000")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_bad_input_names_the_field_and_changes_nothing(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 5000)
    for args, field in [
        (("", account, "transit-topup", 1, "330000"), "request_id"),
        (("r", "123", "transit-topup", 1, "330000"), "account_number"),
        (("r", account, "transit-topup", 0, "330000"), "quantity"),
        (("r", account, "transit-topup", 1, "33"), "region_code"),
    ]:
        with pytest.raises(InvalidArgument) as bad:
            service.redemptions.redeem(*args)  # type: ignore[arg-type]
        assert bad.value.field == field
    assert service.redemptions.find(request_id="r") is None
    with pytest.raises(NotFound):
        service.redemptions.redeem("r", account, "no-such-reward", 1, "330000")


def test_redemption_outside_the_region_is_refused(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 20_000)
    assert (
        refusal(service.redemptions.redeem, "r1", account, "beijing-bus-pass", 1, "330000") == "NOT_AVAILABLE_IN_REGION"
    )
    assert ledger.available(account) == 20_000
    # the same request id gives the same answer again
    assert (
        refusal(service.redemptions.redeem, "r1", account, "beijing-bus-pass", 1, "330000") == "NOT_AVAILABLE_IN_REGION"
    )


def test_insufficient_points_comes_from_the_ledger_and_gives_the_stock_back(
    service: RewardsServices, ledger: FakeLedger
) -> None:
    account = funded(ledger, "310000", 7199)
    assert (
        refusal(service.redemptions.redeem, "r1", account, "shanghai-health-check", 1, "310000")
        == "INSUFFICIENT_POINTS"
    )
    assert service.catalog.get_reward("shanghai-health-check").stock == 2000
    assert ledger.available(account) == 7199


def test_limits_and_stock(service: RewardsServices, ledger: FakeLedger, clock: ManualClock) -> None:
    account = funded(ledger, "330000", 10_000)
    service.redemptions.redeem("m1", account, "museum-free-reservation", 1, "330000")
    assert refusal(service.redemptions.redeem, "m2", account, "museum-free-reservation", 1, "330000") == "LIMIT_REACHED"
    clock.advance(days=1)
    service.redemptions.redeem("m3", account, "museum-free-reservation", 1, "330000")
    service.catalog.update_reward(
        "u1", dataclasses.replace(service.catalog.get_reward("cinema-ticket-reduction"), stock=1), ["stock"]
    )
    service.redemptions.redeem("c1", account, "cinema-ticket-reduction", 1, "330000")
    assert refusal(
        service.redemptions.redeem, "c2", funded(ledger, "330000", 5000), "cinema-ticket-reduction", 1, "330000"
    ) == ("OUT_OF_STOCK")


def test_a_new_price_applies_to_new_redemptions_only(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 10_000)
    before = service.redemptions.redeem("r1", account, "cinema-ticket-reduction", 1, "330000")
    current = service.catalog.get_reward("cinema-ticket-reduction")
    service.catalog.update_reward("u1", dataclasses.replace(current, price_points=2500), ["price_points"])
    after = service.redemptions.redeem("r2", account, "cinema-ticket-reduction", 1, "330000")
    assert (before.price_points, after.price_points) == (2000, 2500)
    assert service.redemptions.find(redemption_id=before.redemption_id).price_points == 2000  # type: ignore[union-attr]
    assert ledger.balances[account] == 10_000 - 4500


def test_retired_rewards_are_refused(service: RewardsServices, ledger: FakeLedger) -> None:
    service.catalog.retire_reward("x1", "scenic-spot-half-price")
    account = funded(ledger, "330000", 5000)
    assert refusal(service.redemptions.redeem, "r1", account, "scenic-spot-half-price", 1, "330000") == "REWARD_RETIRED"
    assert "scenic-spot-half-price" not in [
        r.reward_id for r in service.catalog.list_rewards("", "", False, 100, "")[0]
    ]
