"""Cancel against a real ledger that answers after rewards gave up (issue 14, defect 1): the refund the ledger posted
late is the one recovery repeats, so the voucher ends CANCELLED and refunded, never ISSUED and refunded."""

from __future__ import annotations

import threading

import pytest

from rewards_svc.domain.vouchers import VoucherState
from rewards_svc.server import RewardsServices
from service_kit import db
from service_kit.accounts import new_account_number
from service_kit.errors import FailedPrecondition, Unavailable
from tests.rewards.conftest import ManualClock, refusal
from tests.rewards.slow_ledger import IMPATIENT_S, MakeRewards, SlowLedger

# The slow ledger answers this long after doing the work: past the impatient caller's deadline.
LATE_S = IMPATIENT_S + 1.5
MIN_AGE_S = 60
REWARD = "shanghai-health-check"  # 7200 points, counted stock


def redeemed_voucher(rewards: RewardsServices, ledger: SlowLedger, points: int) -> tuple[str, str]:
    account = new_account_number("310000")
    ledger.fund(account, points, f"earn-{account}")
    redemption = rewards.redemptions.redeem(f"redeem-{account}", account, REWARD, 1, "310000")
    return account, redemption.vouchers[0].code


def cancel_answered_late(make: MakeRewards, ledger: SlowLedger, code: str, reason: str) -> None:
    """The caller's CancelVoucher gives up on the ledger, which posts the refund with the caller's reason."""
    ledger.faults.answer_late["RefundTransfer"] = LATE_S
    with pytest.raises(Unavailable) as pending:
        make(deadline_s=IMPATIENT_S).vouchers.cancel_voucher("cancel-1", code, reason)
    assert pending.value.reason == "REFUND_PENDING"
    ledger.faults.settle()
    ledger.faults.heal()


def test_a_refund_posted_after_the_deadline_leaves_the_voucher_cancelled_not_usable(
    rewards_over_slow_ledger: MakeRewards, slow_ledger: SlowLedger, clock: ManualClock
) -> None:
    rewards = rewards_over_slow_ledger()
    account, code = redeemed_voucher(rewards, slow_ledger, 8000)
    assert slow_ledger.balance(account).available_points == 800
    cancel_answered_late(rewards_over_slow_ledger, slow_ledger, code, "moved to Hangzhou")
    assert slow_ledger.balance(account).available_points == 8000  # the ledger posted it

    clock.advance(seconds=MIN_AGE_S + 1)
    report = rewards.recovery.recover(MIN_AGE_S)
    assert (report.cancels_finished, report.unresolved) == (1, 0)
    assert refusal(rewards.vouchers.use_voucher, "use-1", code, "clinic-9") == "VOUCHER_CANCELLED"
    vouchers, _ = rewards.vouchers.list_vouchers(account, [], 10, 0)
    assert [v.state for v in vouchers] == [VoucherState.CANCELLED]
    assert slow_ledger.balance(account).available_points == 8000
    assert rewards.catalog.get_reward(REWARD).stock == 2000
    # The caller's retry gets the finished cancel.
    assert rewards.vouchers.cancel_voucher("cancel-1", code, "moved to Hangzhou")[1] == 7200
    slow_ledger.verify()


def test_recovery_leaves_a_young_cancel_to_its_live_request(
    rewards_over_slow_ledger: MakeRewards, slow_ledger: SlowLedger
) -> None:
    rewards = rewards_over_slow_ledger()
    account, code = redeemed_voucher(rewards, slow_ledger, 7200)
    slow_ledger.faults.arrive_late["RefundTransfer"] = 0.3  # slow, within the deadline
    answers: list[object] = []
    live = threading.Thread(target=lambda: answers.append(rewards.vouchers.cancel_voucher("c-1", code, "")))
    live.start()
    while slow_ledger.faults.calls["RefundTransfer"] == 0 and live.is_alive():
        live.join(0.01)
    report = rewards.recovery.recover(MIN_AGE_S)
    live.join(20)
    assert report.cancels_finished == 0 and slow_ledger.faults.calls["RefundTransfer"] == 1
    assert answers and answers[0][1] == 7200  # type: ignore[index]
    assert slow_ledger.balance(account).available_points == 7200


def test_a_refund_id_taken_with_another_body_is_never_read_as_refused(
    rewards_over_slow_ledger: MakeRewards, slow_ledger: SlowLedger, clock: ManualClock, database_url: str
) -> None:
    # A cancel from before the reason was kept: the ledger posted the refund with one reason, the retry sends
    # another. The ledger answers IDEMPOTENCY_KEY_REUSED; rewards asks what the id holds and finishes the cancel.
    rewards = rewards_over_slow_ledger()
    account, code = redeemed_voucher(rewards, slow_ledger, 7200)
    cancel_answered_late(rewards_over_slow_ledger, slow_ledger, code, "first reason")
    engine = db.make_engine(database_url)
    with engine.begin() as connection:  # the row as a version that did not keep the reason left it
        connection.exec_driver_sql("UPDATE vouchers SET refund_reason = ''")
    engine.dispose()
    clock.advance(seconds=MIN_AGE_S + 1)
    assert rewards.recovery.recover(MIN_AGE_S).cancels_finished == 1
    with pytest.raises(FailedPrecondition, match="cancelled"):
        rewards.vouchers.use_voucher("use-1", code, "clinic-9")
    assert slow_ledger.balance(account).available_points == 7200
