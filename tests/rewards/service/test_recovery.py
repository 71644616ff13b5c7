"""Recovery of redemptions left halfway: a crash between hold and commit, a stale "no hold" reading, an unanswered
hold the ledger never placed."""

from __future__ import annotations

import pytest

from rewards_svc.domain.redemption import RedemptionState
from rewards_svc.domain.vouchers import VoucherState
from rewards_svc.server import RewardsServices
from rewards_svc.service.redemption import DEFAULT_HOLD_RETRY_WINDOW_S
from service_kit.errors import Unavailable
from tests.rewards.conftest import Crash, MakeService, ManualClock, crash_at, funded
from tests.rewards.rewards_fake_ledger import FakeLedger


@pytest.mark.parametrize("step", ["after_hold", "after_vouchers"])
def test_a_crash_between_hold_and_commit_is_finished_by_recovery(
    make_service: MakeService, ledger: FakeLedger, step: str
) -> None:
    account = funded(ledger, "310000", 7200)
    with pytest.raises(Crash):
        make_service(crash_at(step)).redemptions.redeem("r1", account, "shanghai-health-check", 1, "310000")
    restarted = make_service()
    report = restarted.recovery.recover()
    assert report.redemptions_resolved == 1
    redemption = restarted.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.COMPLETED
    assert len(redemption.vouchers) == 1 and ledger.balances[account] == 0


def test_a_stale_no_hold_reading_never_unwinds_a_redemption_whose_vouchers_are_issued(
    make_service: MakeService, ledger: FakeLedger, clock: ManualClock
) -> None:
    # A retry's resolve read "no hold" just before the first attempt's Hold landed; the first attempt then issued
    # the vouchers and is about to commit. Unwinding now would cancel the vouchers of points about to be taken.
    # (Two-step rows: those written before holds committed at once, or with the setting off.)
    account = funded(ledger, "310000", 7200)
    with pytest.raises(Crash):
        make_service(crash_at("after_vouchers"), CARBON_REDEEM_COMMIT_AT_ONCE="0").redemptions.redeem(
            "r1", account, "shanghai-health-check", 1, "310000"
        )
    clock.advance(seconds=DEFAULT_HOLD_RETRY_WINDOW_S)  # past the window in which the Hold would be sent again
    restarted = make_service(CARBON_REDEEM_COMMIT_AT_ONCE="0")
    pending = restarted.redemptions.find(request_id="r1")
    assert pending is not None and pending.state == RedemptionState.PENDING
    ledger.stale_once.add(pending.hold_id)
    assert restarted.redemptions.resolve(pending.redemption_id).state == RedemptionState.PENDING
    after_stale_read = restarted.redemptions.find(request_id="r1")
    assert after_stale_read is not None
    assert all(voucher.state == VoucherState.ISSUED for voucher in after_stale_read.vouchers)
    restarted.recovery.recover()
    done = restarted.redemptions.find(request_id="r1")
    assert done is not None and done.state == RedemptionState.COMPLETED
    assert ledger.balances[account] == 0 and len(done.vouchers) == 1


def test_a_hold_committing_as_it_lands_after_its_redemption_was_unwound_is_refunded_by_recovery(
    make_service: MakeService, ledger: FakeLedger, clock: ManualClock
) -> None:
    # The vouchers are written before the one Hold that commits at once, so they prove nothing: past the window a
    # "no hold" reading unwinds, and a Hold still on its way that lands later is refunded rather than lost.
    account = funded(ledger, "310000", 7200)
    with pytest.raises(Crash):
        make_service(crash_at("after_vouchers")).redemptions.redeem("r1", account, "shanghai-health-check", 1, "310000")
    clock.advance(seconds=DEFAULT_HOLD_RETRY_WINDOW_S)
    restarted = make_service()
    pending = restarted.redemptions.find(request_id="r1")
    assert pending is not None and pending.hold_commit_account == "system:redemption"
    unwound = restarted.redemptions.resolve(pending.redemption_id)
    assert unwound.state == RedemptionState.FAILED and unwound.failure_reason == "HOLD_NOT_PLACED"
    assert all(voucher.state == VoucherState.CANCELLED for voucher in unwound.vouchers)
    # The first attempt's Hold lands now, exactly as it was sent: the points are taken and posted.
    ledger.hold(pending.hold_id, account, pending.amount_points, pending.hold_timeout_s, pending.redemption_id,
                pending.hold_commit_account)  # fmt: skip
    assert ledger.balances[account] == 0
    restarted.recovery.recover()
    assert ledger.balances[account] == 7200 and ledger.balances["system:redemption"] == 0
    restarted.recovery.recover()  # a second pass sends nothing more: the refund is not repeated
    assert ledger.balances[account] == 7200
    assert restarted.catalog.get_reward("shanghai-health-check").stock == 2000


def test_within_the_window_a_stale_no_hold_reading_sends_the_same_hold_again(
    make_service: MakeService, ledger: FakeLedger
) -> None:
    account = funded(ledger, "310000", 7200)
    with pytest.raises(Crash):
        make_service(crash_at("after_hold")).redemptions.redeem("r1", account, "shanghai-health-check", 1, "310000")
    restarted = make_service()
    pending = restarted.redemptions.find(request_id="r1")
    assert pending is not None
    ledger.stale_once.add(pending.hold_id)
    done = restarted.redemptions.resolve(pending.redemption_id)
    assert done.state == RedemptionState.COMPLETED and len(done.vouchers) == 1
    assert list(ledger.holds) == [pending.hold_id] and ledger.balances[account] == 0


def test_an_unanswered_hold_is_unwound_when_the_ledger_never_placed_it_within_the_window(
    service: RewardsServices, ledger: FakeLedger, clock: ManualClock
) -> None:
    account = funded(ledger, "310000", 7200)
    ledger.down = True
    with pytest.raises(Unavailable):
        service.redemptions.redeem("r1", account, "shanghai-health-check", 1, "310000")
    assert service.catalog.get_reward("shanghai-health-check").stock == 1999
    clock.advance(seconds=DEFAULT_HOLD_RETRY_WINDOW_S)
    ledger.down = False
    service.recovery.recover()
    redemption = service.redemptions.find(request_id="r1")
    assert redemption is not None and redemption.state == RedemptionState.FAILED
    assert service.catalog.get_reward("shanghai-health-check").stock == 2000
    assert ledger.available(account) == 7200


def test_a_hold_sent_again_repeats_the_timeout_first_sent(make_service: MakeService, ledger: FakeLedger) -> None:
    # The ledger fingerprints the timeout: a Hold sent again with today's setting would be "another body".
    account = funded(ledger, "310000", 7200)
    ledger.down = True
    with pytest.raises(Unavailable):
        make_service(CARBON_HOLD_TIMEOUT_S="600").redemptions.redeem(
            "r1", account, "shanghai-health-check", 1, "310000"
        )
    ledger.down = False
    make_service(CARBON_HOLD_TIMEOUT_S="300").recovery.recover()
    [hold] = ledger.holds.values()
    assert (hold.timeout_s, hold.state) == (600, "COMMITTED")
