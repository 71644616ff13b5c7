"""The ledger messages a cross-region transfer sends, built from the transfer alone (so a re-send is identical)."""

from __future__ import annotations

from datetime import date

from google.protobuf.duration_pb2 import Duration

from carbon.common.v1 import common_pb2
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from gateway.domain import (
    CLEARING_ACCOUNT,
    HeldLot,
    Transfer,
    credit_id,
    hold_id,
    late_debit_id,
    reference,
    reversal_id,
)
from service_kit.wire import from_timestamp, to_timestamp


def held_lots(lots: list[ledger.LotPortion]) -> list[HeldLot]:
    return [
        HeldLot(
            lot.lot_id,
            date(lot.earned_on.year, lot.earned_on.month, lot.earned_on.day).isoformat() if lot.earned_on.year else "",
            from_timestamp(lot.expires_at),
            lot.amount_points,
        )
        for lot in lots
    ]


def lot_portions(lots: list[HeldLot]) -> list[ledger.LotPortion]:
    portions = []
    for lot in lots:
        earned = date.fromisoformat(lot.earned_on) if lot.earned_on else None
        portions.append(
            ledger.LotPortion(
                lot_id=lot.lot_id,
                earned_on=common_pb2.Date(year=earned.year, month=earned.month, day=earned.day) if earned else None,
                expires_at=to_timestamp(lot.expires_at),
                amount_points=lot.amount_points,
            )
        )
    return portions


def hold_request(transfer: Transfer) -> ledger.HoldRequest:
    duration = Duration()
    duration.FromMilliseconds(transfer.hold_timeout_ms)
    return ledger.HoldRequest(
        hold_id=hold_id(transfer.transfer_id),
        account=transfer.request.from_account,
        amount_points=transfer.request.amount_points,
        timeout=duration,
        code=ledger.TRANSFER_CODE_TRANSFER_OUT,
        reference=reference(transfer.request),
        metadata={"to_account": transfer.request.to_account},
    )


def commit_request(transfer: Transfer) -> ledger.CommitHoldRequest:
    return ledger.CommitHoldRequest(hold_id=hold_id(transfer.transfer_id), credit_account=CLEARING_ACCOUNT)


def credit_request(transfer: Transfer) -> ledger.PostTransfersRequest:
    """Region B issues the points against its clearing account, recreating the source lots' expiry dates."""
    return ledger.PostTransfersRequest(
        transfers=[
            ledger.Transfer(
                transfer_id=credit_id(transfer.transfer_id),
                debit_account=CLEARING_ACCOUNT,
                credit_account=transfer.request.to_account,
                amount_points=transfer.request.amount_points,
                code=ledger.TRANSFER_CODE_TRANSFER_IN,
                carried_lots=lot_portions(transfer.carry_lots or transfer.held_lots),
                reference=reference(transfer.request),
                metadata={"from_account": transfer.request.from_account},
            )
        ]
    )


def late_debit_request(transfer: Transfer) -> ledger.PostTransfersRequest:
    """Compensation 1: the hold expired after B was credited, so A is debited plainly instead."""
    return ledger.PostTransfersRequest(
        transfers=[
            ledger.Transfer(
                transfer_id=late_debit_id(transfer.transfer_id),
                debit_account=transfer.request.from_account,
                credit_account=CLEARING_ACCOUNT,
                amount_points=transfer.request.amount_points,
                code=ledger.TRANSFER_CODE_TRANSFER_OUT,
                reference=reference(transfer.request),
                metadata={"to_account": transfer.request.to_account, "compensates": hold_id(transfer.transfer_id)},
            )
        ]
    )


def reversal_request(transfer: Transfer) -> ledger.PostTransfersRequest:
    """Compensation 2: A could not be debited, so B's credit is taken back into B's clearing account."""
    return ledger.PostTransfersRequest(
        transfers=[
            ledger.Transfer(
                transfer_id=reversal_id(transfer.transfer_id),
                debit_account=transfer.request.to_account,
                credit_account=CLEARING_ACCOUNT,
                amount_points=transfer.request.amount_points,
                code=ledger.TRANSFER_CODE_TRANSFER_OUT,
                reference=reference(transfer.request),
                metadata={"reverses": credit_id(transfer.transfer_id)},
            )
        ]
    )


def posted(response: ledger.PostTransfersResponse) -> tuple[bool, str]:
    """(True, "") when the single transfer is posted now or was before; else (False, its failure reason)."""
    result = response.results[0]
    if result.status in (ledger.TRANSFER_STATUS_POSTED, ledger.TRANSFER_STATUS_ALREADY_POSTED):
        return True, ""
    return False, result.failure_reason or "TRANSFER_FAILED"
