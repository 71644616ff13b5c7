"""Voucher use cases: used once, cancelled with a refund once, expired ones marked and refused."""

from __future__ import annotations

from rewards_svc.domain.vouchers import VoucherState, refund_id_for
from rewards_svc.server import RewardsServices
from tests.rewards.conftest import ManualClock, funded, refusal
from tests.rewards.rewards_fake_ledger import FakeLedger


def test_a_voucher_is_used_once(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "330000", 1000)
    code = service.redemptions.redeem("r1", account, "museum-free-reservation", 1, "330000").vouchers[0].code
    used = service.vouchers.use_voucher("use-1", code, "museum-7")
    assert used.state == VoucherState.USED
    assert service.vouchers.use_voucher("use-1", code, "museum-7") == used
    assert refusal(service.vouchers.use_voucher, "use-2", code, "museum-7") == "VOUCHER_ALREADY_USED"
    assert refusal(service.vouchers.cancel_voucher, "cancel-1", code, "changed my mind") == "VOUCHER_ALREADY_USED"


def test_cancel_refunds_the_points_once_and_restores_stock(service: RewardsServices, ledger: FakeLedger) -> None:
    account = funded(ledger, "310000", 8000)
    code = service.redemptions.redeem("r1", account, "shanghai-health-check", 1, "310000").vouchers[0].code
    voucher, refunded = service.vouchers.cancel_voucher("cancel-1", code, "moved away")
    assert (voucher.state, refunded) == (VoucherState.CANCELLED, 7200)
    assert service.vouchers.cancel_voucher("cancel-1", code, "moved away")[1] == 7200
    assert refusal(service.vouchers.cancel_voucher, "cancel-2", code, "again") == "VOUCHER_CANCELLED"
    assert ledger.balances[account] == 8000
    assert service.catalog.get_reward("shanghai-health-check").stock == 2000


def test_expired_vouchers_are_marked_and_cannot_be_used(
    service: RewardsServices, ledger: FakeLedger, clock: ManualClock
) -> None:
    account = funded(ledger, "330000", 1000)
    code = service.redemptions.redeem("r1", account, "museum-free-reservation", 1, "330000").vouchers[0].code
    clock.advance(days=32)
    vouchers, _ = service.vouchers.list_vouchers(account, [], 10, 0)
    assert [v.state for v in vouchers] == [VoucherState.EXPIRED]
    assert refusal(service.vouchers.use_voucher, "use-1", code, "museum-7") == "VOUCHER_EXPIRED"


def test_a_refund_id_held_by_another_transfer_leaves_the_voucher_neither_usable_nor_refunded(
    service: RewardsServices, ledger: FakeLedger
) -> None:
    account = funded(ledger, "310000", 7200)
    redemption = service.redemptions.redeem("r1", account, "shanghai-health-check", 1, "310000")
    refund_id = refund_id_for(redemption.hold_id, 0)
    ledger.refund_bodies[refund_id] = ("another-transfer", 1, "not ours")  # the id is taken, by something else
    ledger.transfers[refund_id] = ("system:redemption", "somebody", 1)
    code = redemption.vouchers[0].code
    assert refusal(service.vouchers.cancel_voucher, "c-1", code, "moved") == "REFUND_ID_CONFLICT"
    assert refusal(service.vouchers.use_voucher, "u-1", code, "clinic") == "VOUCHER_CANCELLED"
    assert ledger.balances[account] == 0  # nothing refunded
    report = service.recovery.recover()
    assert (report.cancels_finished, report.unresolved) == (1, 0)  # left for an operator, not retried at once
    assert refusal(service.vouchers.use_voucher, "u-2", code, "clinic") == "VOUCHER_CANCELLED"
