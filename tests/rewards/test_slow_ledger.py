"""Cancel against a real ledger that answers after rewards gave up (issue 14, defect 1): the refund the ledger posted
late is the one recovery repeats, so the voucher ends CANCELLED and refunded, never ISSUED and refunded."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rewards_svc.clients import GrpcLedger
from rewards_svc.domain.vouchers import VoucherState
from rewards_svc.server import RewardsServices, build_services
from service_kit import db
from service_kit.accounts import new_account_number
from service_kit.errors import FailedPrecondition, Unavailable
from service_kit.settings import Settings
from tests.rewards.conftest import ManualClock, refusal
from tests.rewards.slow_ledger import SlowLedger

# Rewards gives up on the ledger after this; the slow ledger answers well after it.
DEADLINE_S = 0.4
LATE_S = 1.2
MIN_AGE_S = 60
REWARD = "shanghai-health-check"  # 7200 points, counted stock


@pytest.fixture
def rewards(database_url: str, slow_ledger: SlowLedger, clock: ManualClock) -> Iterator[RewardsServices]:
    engine = db.make_engine(database_url)
    db.migrate("rewards_svc", engine)
    client = GrpcLedger(slow_ledger.address, deadline_s=DEADLINE_S)
    yield build_services(Settings(service="rewards_svc", region_code="310000"), engine, ledger=client, clock=clock)
    client.close()
    engine.dispose()


def redeemed_voucher(rewards: RewardsServices, ledger: SlowLedger, points: int) -> tuple[str, str]:
    account = new_account_number("310000")
    ledger.fund(account, points, f"earn-{account}")
    redemption = rewards.redemptions.redeem(f"redeem-{account}", account, REWARD, 1, "310000")
    return account, redemption.vouchers[0].code


def test_a_refund_posted_after_the_deadline_leaves_the_voucher_cancelled_not_usable(
    rewards: RewardsServices, slow_ledger: SlowLedger, clock: ManualClock
) -> None:
    account, code = redeemed_voucher(rewards, slow_ledger, 8000)
    assert slow_ledger.balance(account).available_points == 800
    slow_ledger.faults.answer_late["RefundTransfer"] = LATE_S
    with pytest.raises(Unavailable) as pending:
        rewards.vouchers.cancel_voucher("cancel-1", code, "moved to Hangzhou")
    assert pending.value.reason == "REFUND_PENDING"
    slow_ledger.faults.settle()  # the ledger has posted the refund, with the caller's reason
    slow_ledger.faults.heal()
    assert slow_ledger.balance(account).available_points == 8000

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


def test_recovery_leaves_a_young_cancel_to_its_live_request(rewards: RewardsServices, slow_ledger: SlowLedger) -> None:
    account, code = redeemed_voucher(rewards, slow_ledger, 7200)
    slow_ledger.faults.arrive_late["RefundTransfer"] = DEADLINE_S / 2  # slow, within the deadline
    answers: list[object] = []
    live = threading.Thread(target=lambda: answers.append(rewards.vouchers.cancel_voucher("c-1", code, "")))
    live.start()
    while slow_ledger.faults.calls["RefundTransfer"] == 0:
        live.join(0.01)
    report = rewards.recovery.recover(MIN_AGE_S)
    live.join(10)
    assert report.cancels_finished == 0 and slow_ledger.faults.calls["RefundTransfer"] == 1
    assert answers and answers[0][1] == 7200  # type: ignore[index]
    assert slow_ledger.balance(account).available_points == 7200


def test_a_refund_id_taken_with_another_body_is_never_read_as_refused(
    rewards: RewardsServices, slow_ledger: SlowLedger, clock: ManualClock, database_url: str
) -> None:
    # A cancel from before the reason was kept: the ledger posted the refund with one reason, the retry sends
    # another. The ledger answers IDEMPOTENCY_KEY_REUSED; rewards asks what the id holds and finishes the cancel.
    account, code = redeemed_voucher(rewards, slow_ledger, 7200)
    slow_ledger.faults.answer_late["RefundTransfer"] = LATE_S
    with pytest.raises(Unavailable):
        rewards.vouchers.cancel_voucher("cancel-1", code, "first reason")
    slow_ledger.faults.settle()
    slow_ledger.faults.heal()
    engine = db.make_engine(database_url)
    with engine.begin() as connection:  # the row as a version that did not keep the reason left it
        connection.exec_driver_sql("UPDATE vouchers SET refund_reason = ''")
    engine.dispose()
    clock.advance(seconds=MIN_AGE_S + 1)
    assert rewards.recovery.recover(MIN_AGE_S).cancels_finished == 1
    with pytest.raises(FailedPrecondition, match="cancelled"):
        rewards.vouchers.use_voucher("use-1", code, "clinic-9")
    assert slow_ledger.balance(account).available_points == 7200
