"""Protobuf <-> the gateway's values: its own API's messages, and the messages it sends the regions.

The ledger messages of a transfer step are built from the stored transfer alone, so a re-sent step is identical and
the receiving ledger deduplicates it by the id derived from the transfer id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import grpc
from google.protobuf.duration_pb2 import Duration

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as pb
from carbon.ledger.v1 import ledger_service_pb2 as ledger
from carbon.rewards.v1 import rewards_service_pb2 as rewards
from gateway.domain.claims import AttemptClaims, AttemptQuery, ConflictCount, Holder, attempts_token
from gateway.domain.directory import DirectoryAccount
from gateway.domain.redeem_anywhere import RedeemAnywhere, RedeemAnywhereRequest, RedeemAnywhereState
from gateway.domain.settlement import Position
from gateway.domain.transfers import (
    HeldLot,
    State,
    Transfer,
    TransferRequest,
    credit_id,
    hold_id,
    late_debit_id,
    reference,
    reversal_id,
)
from service_kit.accounts import CLEARING_ACCOUNT
from service_kit.errors import DomainError
from service_kit.status import INTERNAL_MESSAGE
from service_kit.topology import RegionEntry
from service_kit.wire import from_timestamp, to_timestamp, to_unix_us

STATE_PREFIX = "CROSS_REGION_TRANSFER_STATE_"
POSTED = (ledger.TRANSFER_STATUS_POSTED, ledger.TRANSFER_STATUS_ALREADY_POSTED)

# --- the gateway's own API ------------------------------------------------------------------------------------------


def transfer_request(request: pb.CreateCrossRegionTransferRequest) -> TransferRequest:
    return TransferRequest(
        transfer_id=request.transfer_id,
        from_account=request.from_account,
        to_account=request.to_account,
        amount_points=request.amount_points,
    )


def transfer_result(
    transfer_id: str, outcome: Transfer | DomainError | None, trace_id: str = ""
) -> pb.CrossRegionTransferResult:
    """One item of CreateCrossRegionTransfers: the transfer, or the error the unary call would have raised (None: an
    unexpected failure, INTERNAL as the edge answers it, its trace id in the log)."""
    if isinstance(outcome, Transfer):
        status = pb.CROSS_REGION_TRANSFER_RESULT_STATUS_OK
        return pb.CrossRegionTransferResult(transfer_id=transfer_id, status=status, transfer=transfer_message(outcome))
    failed = pb.CrossRegionTransferResult(transfer_id=transfer_id, status=pb.CROSS_REGION_TRANSFER_RESULT_STATUS_FAILED)
    if outcome is None:
        failed.failure_code = grpc.StatusCode.INTERNAL.value[0]
        failed.failure_reason = "INTERNAL"
        failed.failure_message = INTERNAL_MESSAGE
        failed.failure_metadata["trace_id"] = trace_id
        return failed
    failed.failure_code = outcome.code.value[0]
    failed.failure_reason = outcome.reason
    failed.failure_message = outcome.message
    failed.failure_field = outcome.metadata.get("field", "")
    failed.failure_metadata.update(outcome.metadata)
    return failed


def transfer_state(value: pb.CrossRegionTransferState.ValueType) -> State | None:
    """The state a list is filtered by; None when the request names none."""
    return State(pb.CrossRegionTransferState.Name(value).removeprefix(STATE_PREFIX)) if value else None


def transfer_message(transfer: Transfer) -> pb.CrossRegionTransfer:
    return pb.CrossRegionTransfer(
        transfer_id=transfer.transfer_id,
        from_account=transfer.request.from_account,
        to_account=transfer.request.to_account,
        amount_points=transfer.request.amount_points,
        state=pb.CrossRegionTransferState.Value(STATE_PREFIX + transfer.state.value),
        failure_reason=transfer.failure_reason,
        created_at=to_timestamp(transfer.created_at),
        expires_at=to_timestamp(transfer.expires_at),
        finished_at=to_timestamp(transfer.finished_at) if transfer.finished_at else None,
        authorized_by=transfer.authorized_by,
    )


def redeem_anywhere_request(request: pb.RedeemAnywhereRequest) -> RedeemAnywhereRequest:
    return RedeemAnywhereRequest(
        request_id=request.request_id,
        source_account=request.source_account,
        target_account=request.target_account,
        reward_id=request.reward_id,
        quantity=request.quantity or 1,
    )


def redeem_anywhere_response(item: RedeemAnywhere, paid_by: Transfer | None) -> pb.RedeemAnywhereResponse:
    # A refusal ended it: the reason is stored from the step that refused; "" only when that step knew none.
    refused = item.finished and item.state is not RedeemAnywhereState.REDEEMED
    return pb.RedeemAnywhereResponse(
        transfer=transfer_message(paid_by) if paid_by else None,
        redemption_id=item.redemption_id,
        voucher_codes=item.voucher_codes,
        state=pb.RedeemAnywhereState.Value(f"REDEEM_ANYWHERE_STATE_{item.state.value}"),
        failure_reason=item.failure_reason or ("REDEEM_ANYWHERE_FAILED" if refused else ""),
        request_id=item.request.request_id,
    )


def position_message(position: Position) -> pb.SettlementPosition:
    return pb.SettlementPosition(
        debtor_region=position.debtor_region,
        creditor_region=position.creditor_region,
        points=position.points,
        amount_cents=position.amount_cents,
    )


def directory_response(accounts: list[DirectoryAccount]) -> pb.GetDirectoryEntryResponse:
    return pb.GetDirectoryEntryResponse(
        accounts=[
            pb.DirectoryAccount(
                account_number=account.account_number,
                region_code=account.region_code,
                available_points=account.available_points,
                held_points=account.held_points,
                error_reason=account.error_reason,
            )
            for account in accounts
        ],
        total_available_points=sum(account.available_points for account in accounts),
    )


def region_message(entry: RegionEntry, health: str, addresses: bool) -> pb.Region:
    """A region as listed; its services' internal addresses only for a caller that operates them (`addresses`)."""
    message = pb.Region(region_code=entry.region_code, name_en=entry.name_en, name_zh=entry.name_zh, health=health)
    if addresses:
        message.identity_address = entry.identity_address
        message.ingest_address = entry.ingest_address
        message.ledger_address = entry.ledger_address
        message.rewards_address = entry.rewards_address
        message.incentives_address = entry.incentives_address
    return message


# --- to the regions' ledgers and rewards ----------------------------------------------------------------------------


def held_lots(lots: list[ledger.LotPortion]) -> list[HeldLot]:
    return [
        HeldLot(
            lot_id=lot.lot_id,
            earned_on=date(lot.earned_on.year, lot.earned_on.month, lot.earned_on.day).isoformat()
            if lot.earned_on.year
            else "",
            expires_at=from_timestamp(lot.expires_at),
            amount_points=lot.amount_points,
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


def release_request(transfer: Transfer) -> ledger.ReleaseHoldRequest:
    return ledger.ReleaseHoldRequest(hold_id=hold_id(transfer.transfer_id))


def get_hold_request(transfer: Transfer) -> ledger.GetHoldRequest:
    return ledger.GetHoldRequest(hold_id=hold_id(transfer.transfer_id))


def credit_posting(transfer: Transfer) -> ledger.Transfer:
    """Region B issues the points against its clearing account, recreating the source lots' expiry dates."""
    return ledger.Transfer(
        transfer_id=credit_id(transfer.transfer_id),
        debit_account=CLEARING_ACCOUNT,
        credit_account=transfer.request.to_account,
        amount_points=transfer.request.amount_points,
        code=ledger.TRANSFER_CODE_TRANSFER_IN,
        carried_lots=lot_portions(transfer.carry_lots or transfer.held_lots),
        reference=reference(transfer.request),
        metadata={"from_account": transfer.request.from_account},
    )


def late_debit_posting(transfer: Transfer) -> ledger.Transfer:
    """Compensation 1: the hold expired after B was credited, so A is debited plainly instead."""
    return ledger.Transfer(
        transfer_id=late_debit_id(transfer.transfer_id),
        debit_account=transfer.request.from_account,
        credit_account=CLEARING_ACCOUNT,
        amount_points=transfer.request.amount_points,
        code=ledger.TRANSFER_CODE_TRANSFER_OUT,
        reference=reference(transfer.request),
        metadata={"to_account": transfer.request.to_account, "compensates": hold_id(transfer.transfer_id)},
    )


def reversal_posting(transfer: Transfer) -> ledger.Transfer:
    """Compensation 2: A could not be debited, so B's credit is taken back into B's clearing account."""
    return ledger.Transfer(
        transfer_id=reversal_id(transfer.transfer_id),
        debit_account=transfer.request.to_account,
        credit_account=CLEARING_ACCOUNT,
        amount_points=transfer.request.amount_points,
        code=ledger.TRANSFER_CODE_TRANSFER_OUT,
        reference=reference(transfer.request),
        metadata={"reverses": credit_id(transfer.transfer_id)},
    )


def refusal_reason(result: ledger.TransferResult) -> str:
    """Why the ledger refused a posting; "" when it is posted now or was before."""
    if result.status in POSTED:
        return ""
    return result.failure_reason or "TRANSFER_FAILED"


def redeem_request(item: RedeemAnywhere, region_code: str) -> rewards.RedeemRequest:
    """The redemption in the reward's region, deduplicated there by the id derived from the request id."""
    return rewards.RedeemRequest(
        request_id=item.request.redeem_request_id,
        account_number=item.request.target_account,
        reward_id=item.request.reward_id,
        quantity=item.request.quantity,
        region_code=region_code,
    )


def claims_response(answers: list[Holder | None], other_attempts: Sequence[int] = ()) -> pb.ClaimActivitiesResponse:
    """Held as a column; the holders of the others with their claim's index."""
    return pb.ClaimActivitiesResponse(
        other_attempt_indexes=other_attempts,
        held=[holder is None for holder in answers],
        holders=[
            pb.ClaimHolder(index=index, region_code=h.region_code, partner_id=h.partner_id, event_id=h.event_id)
            for index, h in enumerate(answers)
            if h is not None
        ],
    )


def attempts_response(
    attempts: list[AttemptClaims], query: AttemptQuery, page_token: str
) -> pb.ListClaimAttemptsResponse:
    """A page of attempts; a full page continues after its last attempt, and any page resumes there (ADR 0416)."""
    resume = page_token
    if attempts:
        last = attempts[-1]
        resume = attempts_token(to_unix_us(last.claimed_at), last.attempt_id)
    return pb.ListClaimAttemptsResponse(
        attempts=[
            pb.ClaimAttempt(
                attempt_id=a.attempt_id,
                claimed_at_us=to_unix_us(a.claimed_at),
                fingerprints=a.fingerprints,
                occurred_days=a.days,
            )
            for a in attempts
        ],
        next_page_token=resume if len(attempts) == query.page_size else "",
        resume_page_token=resume,
    )


def conflicts_response(counts: list[ConflictCount]) -> pb.ListClaimConflictsResponse:
    return pb.ListClaimConflictsResponse(
        counts=[
            pb.ClaimConflictCount(
                day=c.day.isoformat(),
                holder_region=c.holder_region,
                holder_partner=c.holder_partner,
                claimant_region=c.claimant_region,
                claimant_partner=c.claimant_partner,
                conflicts=c.conflicts,
            )
            for c in counts
        ]
    )
