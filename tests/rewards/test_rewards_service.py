"""Use cases against a real database (SQLite and PostgreSQL) with an in-memory ledger: redeem, vouchers, charity,
recommendations, and recovery of redemptions left halfway."""

from __future__ import annotations

import dataclasses

import pytest

from rewards_svc.domain import RedemptionState, VoucherState
from rewards_svc.service import RewardsService
from service_kit.accounts import new_account_number
from service_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tests.rewards.conftest import Crash, MakeService, ManualClock, crash_at
from tests.rewards.rewards_fake_ledger import FakeLedger


def funded(ledger: FakeLedger, region: str, points: int) -> str:
    account = new_account_number(region)
    ledger.fund(account, points)
    return account


def refusal(call: object, *args: object) -> str:
    with pytest.raises(FailedPrecondition) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.reason


def test_redeem_holds_issues_and_commits(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 1500)
    redemption = service.redeem("r1", account, "museum-free-reservation", 1, "330000")
    assert redemption.state == RedemptionState.COMPLETED
    assert len(redemption.vouchers) == 1 and redemption.vouchers[0].state == VoucherState.ISSUED
    assert ledger.balances[account] == 1000
    assert ledger.balances["system:redemption"] == 500


def test_a_retry_returns_the_first_result_and_a_reused_key_is_refused(
    service: RewardsService, ledger: FakeLedger
) -> None:
    account = funded(ledger, "330000", 5000)
    first = service.redeem("r1", account, "transit-topup", 10, "330000")
    assert service.redeem("r1", account, "transit-topup", 10, "330000") == first
    assert ledger.balances[account] == 4000
    with pytest.raises(AlreadyExists) as reused:
        service.redeem("r1", account, "transit-topup", 11, "330000")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_bad_input_names_the_field_and_changes_nothing(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 5000)
    for args, field in [
        (("", account, "transit-topup", 1, "330000"), "request_id"),
        (("r", "123", "transit-topup", 1, "330000"), "account_number"),
        (("r", account, "transit-topup", 0, "330000"), "quantity"),
        (("r", account, "transit-topup", 1, "33"), "region_code"),
    ]:
        with pytest.raises(InvalidArgument) as bad:
            service.redeem(*args)  # type: ignore[arg-type]
        assert bad.value.field == field
    assert service.redemptions.find(request_id="r") is None
    with pytest.raises(NotFound):
        service.redeem("r", account, "no-such-reward", 1, "330000")


def test_redemption_outside_the_region_is_refused(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 20_000)
    assert refusal(service.redeem, "r1", account, "beijing-bus-pass", 1, "330000") == "NOT_AVAILABLE_IN_REGION"
    assert ledger.available(account) == 20_000
    # the same request id gives the same answer again
    assert refusal(service.redeem, "r1", account, "beijing-bus-pass", 1, "330000") == "NOT_AVAILABLE_IN_REGION"


def test_insufficient_points_comes_from_the_ledger_and_gives_the_stock_back(
    service: RewardsService, ledger: FakeLedger
) -> None:
    account = funded(ledger, "310000", 7199)
    assert refusal(service.redeem, "r1", account, "shanghai-health-check", 1, "310000") == "INSUFFICIENT_POINTS"
    assert service.get_reward("shanghai-health-check").stock == 2000
    assert ledger.available(account) == 7199


def test_limits_and_stock(service: RewardsService, ledger: FakeLedger, clock: ManualClock) -> None:
    account = funded(ledger, "330000", 10_000)
    service.redeem("m1", account, "museum-free-reservation", 1, "330000")
    assert refusal(service.redeem, "m2", account, "museum-free-reservation", 1, "330000") == "LIMIT_REACHED"
    clock.advance(days=1)
    service.redeem("m3", account, "museum-free-reservation", 1, "330000")
    service.update_reward("u1", dataclasses.replace(service.get_reward("cinema-ticket-reduction"), stock=1), ["stock"])
    service.redeem("c1", account, "cinema-ticket-reduction", 1, "330000")
    assert refusal(service.redeem, "c2", funded(ledger, "330000", 5000), "cinema-ticket-reduction", 1, "330000") == (
        "OUT_OF_STOCK"
    )


def test_a_new_price_applies_to_new_redemptions_only(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 10_000)
    before = service.redeem("r1", account, "cinema-ticket-reduction", 1, "330000")
    current = service.get_reward("cinema-ticket-reduction")
    service.update_reward("u1", dataclasses.replace(current, price_points=2500), ["price_points"])
    after = service.redeem("r2", account, "cinema-ticket-reduction", 1, "330000")
    assert (before.price_points, after.price_points) == (2000, 2500)
    assert service.redemptions.find(redemption_id=before.redemption_id).price_points == 2000  # type: ignore[union-attr]
    assert ledger.balances[account] == 10_000 - 4500


def test_retired_rewards_are_refused(service: RewardsService, ledger: FakeLedger) -> None:
    service.retire_reward("x1", "scenic-spot-half-price")
    account = funded(ledger, "330000", 5000)
    assert refusal(service.redeem, "r1", account, "scenic-spot-half-price", 1, "330000") == "REWARD_RETIRED"
    assert "scenic-spot-half-price" not in [r.reward_id for r in service.list_rewards("", "", False, 100, "")[0]]


def test_create_reward_is_idempotent(service: RewardsService) -> None:
    created = dataclasses.replace(service.get_reward("museum-free-reservation"), reward_id="new-one", stock=10)
    assert service.create_reward("c1", created) == service.create_reward("c1", created)
    with pytest.raises(AlreadyExists) as reused:
        service.create_reward("c1", dataclasses.replace(created, stock=11))
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(AlreadyExists) as taken:
        service.create_reward("c2", created)
    assert taken.value.reason == "REWARD_EXISTS"


def test_a_voucher_is_used_once(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 1000)
    code = service.redeem("r1", account, "museum-free-reservation", 1, "330000").vouchers[0].code
    used = service.use_voucher("use-1", code, "museum-7")
    assert used.state == VoucherState.USED
    assert service.use_voucher("use-1", code, "museum-7") == used
    assert refusal(service.use_voucher, "use-2", code, "museum-7") == "VOUCHER_ALREADY_USED"
    assert refusal(service.cancel_voucher, "cancel-1", code, "changed my mind") == "VOUCHER_ALREADY_USED"


def test_cancel_refunds_the_points_once_and_restores_stock(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "310000", 8000)
    code = service.redeem("r1", account, "shanghai-health-check", 1, "310000").vouchers[0].code
    voucher, refunded = service.cancel_voucher("cancel-1", code, "moved away")
    assert (voucher.state, refunded) == (VoucherState.CANCELLED, 7200)
    assert service.cancel_voucher("cancel-1", code, "moved away")[1] == 7200
    assert refusal(service.cancel_voucher, "cancel-2", code, "again") == "VOUCHER_CANCELLED"
    assert ledger.balances[account] == 8000
    assert service.get_reward("shanghai-health-check").stock == 2000


def test_expired_vouchers_are_marked_and_cannot_be_used(
    service: RewardsService, ledger: FakeLedger, clock: ManualClock
) -> None:
    account = funded(ledger, "330000", 1000)
    code = service.redeem("r1", account, "museum-free-reservation", 1, "330000").vouchers[0].code
    clock.advance(days=32)
    vouchers, _ = service.list_vouchers(account, [], 10, 0)
    assert [v.state for v in vouchers] == [VoucherState.EXPIRED]
    assert refusal(service.use_voucher, "use-1", code, "museum-7") == "VOUCHER_EXPIRED"


def test_donations_count_impact_per_region(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 12_000)
    donation = service.donate("d1", account, "trees", 3000)
    assert (donation.units, donation.project.units_region, donation.project.donated_points_region) == (3, 3, 3000)
    assert service.donate("d1", account, "trees", 3000).project.units_region == 3
    books = service.donate("d2", account, "childrens-books", 5000)
    assert books.units == 1
    assert ledger.balances["system:donation"] == 8000
    assert refusal(service.donate, "d3", account, "childrens-books", 5000) == "INSUFFICIENT_POINTS"


def test_recommendations_use_the_ledger_balance(service: RewardsService, ledger: FakeLedger) -> None:
    account = funded(ledger, "310000", 7000)
    available, items = service.recommend(account, "310000", 3)
    assert available == 7000
    out_of_reach = [(r.reward.reward_id, r.missing_points) for r in items if not r.affordable]
    assert out_of_reach[0] == ("shanghai-health-check", 200)
    assert all(r.reward.price_points <= 7000 for r in items if r.affordable)


@pytest.mark.parametrize("step", ["after_hold", "after_vouchers"])
def test_a_crash_between_hold_and_commit_is_finished_by_recovery(
    make_service: MakeService, ledger: FakeLedger, step: str
) -> None:
    account = funded(ledger, "310000", 7200)
    with pytest.raises(Crash):
        make_service(crash_at(step)).redeem("r1", account, "shanghai-health-check", 1, "310000")
    restarted = make_service()
    report = restarted.recover()
    assert report.redemptions_resolved == 1
    redemption = restarted.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.COMPLETED
    assert len(redemption.vouchers) == 1 and ledger.balances[account] == 0


def test_a_stale_no_hold_reading_never_unwinds_a_redemption_whose_vouchers_are_issued(
    make_service: MakeService, ledger: FakeLedger
) -> None:
    # A retry's resolve read "no hold" just before the first attempt's Hold landed; the first attempt then issued
    # the vouchers and is about to commit. Unwinding now would cancel the vouchers of points about to be taken.
    account = funded(ledger, "310000", 7200)
    with pytest.raises(Crash):
        make_service(crash_at("after_vouchers")).redeem("r1", account, "shanghai-health-check", 1, "310000")
    restarted = make_service()
    pending = restarted.redemptions.find(request_id="r1")
    assert pending is not None and pending.state == RedemptionState.PENDING
    ledger.stale_once.add(pending.hold_id)
    assert restarted.redemptions.resolve(pending.redemption_id).state == RedemptionState.PENDING
    after_stale_read = restarted.redemptions.find(request_id="r1")
    assert after_stale_read is not None
    assert all(voucher.state == VoucherState.ISSUED for voucher in after_stale_read.vouchers)
    restarted.recover()
    done = restarted.redemptions.find(request_id="r1")
    assert done is not None and done.state == RedemptionState.COMPLETED
    assert ledger.balances[account] == 0 and len(done.vouchers) == 1


def test_an_unanswered_hold_is_unwound_when_the_ledger_never_placed_it(
    service: RewardsService, ledger: FakeLedger
) -> None:
    account = funded(ledger, "310000", 7200)
    ledger.down = True
    with pytest.raises(Unavailable):
        service.redeem("r1", account, "shanghai-health-check", 1, "310000")
    assert service.get_reward("shanghai-health-check").stock == 1999
    ledger.down = False
    service.recover()
    redemption = service.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.FAILED
    assert service.get_reward("shanghai-health-check").stock == 2000
    assert ledger.available(account) == 7200
