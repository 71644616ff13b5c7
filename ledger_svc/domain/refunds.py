"""Refunds: a posted debit of a user's lots is paid back into the very lots it took, latest-expiring first."""

from __future__ import annotations

from collections.abc import Mapping

from ledger_svc.domain.fingerprints import fingerprint_of
from ledger_svc.domain.lots import Portion
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.transfers import Posting
from service_kit.errors import FailedPrecondition


def refund_fingerprint(original_transfer_id: str, amount_points: int, reason: str) -> str:
    return fingerprint_of(["refund", original_transfer_id, amount_points, reason])


def check_refundable(original: Posting) -> None:
    """Only a debit of a user account's lots can be refunded: not a credit, a refund or an expiry."""
    if not original.debit_lots or original.refund_of is not None or original.code == TransferCode.EXPIRE:
        raise FailedPrecondition(
            "NOT_REFUNDABLE", f"transfer {original.transfer_id!r} is not a debit of a user account's lots"
        )


def refund_amount(original: Posting, refunded_points: int, amount_points: int) -> int:
    """The points a refund moves: `amount_points`, or 0 for all that is left, within what is left."""
    refundable = original.amount_points - refunded_points
    amount = amount_points or refundable
    if refundable == 0 or amount > refundable:
        raise FailedPrecondition(
            "REFUND_EXCEEDS_ORIGINAL",
            f"{refundable} of transfer {original.transfer_id!r} can still be refunded, {amount} asked",
            {"refundable_points": refundable},
        )
    return amount


def restore_portions(taken: list[Portion], refunded_per_lot: Mapping[int, int], amount_points: int) -> list[Portion]:
    """The latest-expiring points taken come back first (the user keeps the longest-lived points)."""
    restore: list[Portion] = []
    still_needed = amount_points
    for portion in sorted(taken, key=lambda item: item.key, reverse=True):
        assert portion.lot_id is not None
        left = portion.amount_points - refunded_per_lot.get(portion.lot_id, 0)
        give = min(left, still_needed)
        if give > 0:
            restore.append(Portion(portion.key, give, portion.lot_id))
            still_needed -= give
    assert still_needed == 0, "refundable points were counted but not found in the original lots"
    return restore
