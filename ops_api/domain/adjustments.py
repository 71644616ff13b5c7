"""Manual adjustments under four eyes: one person asks (with a reason), a different person approves, then the ledger
posts an ADJUST transfer between the account and system:adjustment.

Why four eyes: an adjustment creates or removes points outside every rule (no behaviour, no redemption), which is
exactly what fraud or a fat finger looks like; a second person's approval is the usual control for such entries.
Idempotency: a request is keyed by (requester, X-Request-Id); the posting by transfer id "ops-adjust-<id>", so an
approval retried after a crash posts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ops_api.problems import Problem
from service_kit.accounts import ADJUSTMENT_ACCOUNT


class AdjustmentState(StrEnum):
    """PENDING -> APPROVED -> POSTED | FAILED; PENDING -> REJECTED."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    POSTED = "POSTED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Adjustment:
    adjustment_id: str
    request_id: str
    account_number: str
    region_code: str
    amount_points: int  # signed: positive credits the account from system:adjustment, negative debits it back
    reason: str
    state: AdjustmentState
    requested_by: str
    requested_at: datetime
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""
    transfer_id: str = ""
    failure_reason: str = ""


@dataclass(frozen=True)
class AdjustmentPosting:
    """The one ledger transfer an approved adjustment becomes."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    reference: str
    requested_by: str
    approved_by: str


def require_same_request(existing: Adjustment, account_number: str, amount_points: int, request_id: str) -> None:
    """A retry with the same request id must ask for the same adjustment."""
    if (existing.account_number, existing.amount_points) != (account_number, amount_points):
        raise Problem(
            409,
            "IDEMPOTENCY_KEY_REUSED",
            "X-Request-Id was used for a different adjustment",
            {"request_id": request_id},
        )


def require_other_person(adjustment: Adjustment, decider: str) -> None:
    """The four-eyes rule: whoever requested an adjustment may not decide it."""
    if adjustment.requested_by == decider:
        raise Problem(
            403,
            "SELF_APPROVAL_FORBIDDEN",
            "an adjustment must be decided by someone other than the person who requested it",
            {"adjustment_id": adjustment.adjustment_id},
        )


def require_decided_as(adjustment: Adjustment, decider: str, state: AdjustmentState) -> None:
    """After a decision: it must be this person's, and an approval or a rejection as they asked (a repeat by the same
    decider is a no-op); otherwise someone else decided first."""
    rejected = adjustment.state is AdjustmentState.REJECTED
    if adjustment.decided_by != decider or rejected != (state is AdjustmentState.REJECTED):
        raise Problem(
            409,
            "ADJUSTMENT_ALREADY_DECIDED",
            f"adjustment {adjustment.adjustment_id} is {adjustment.state.value} (by {adjustment.decided_by})",
            {"state": adjustment.state.value},
        )


def posting_of(adjustment: Adjustment, approved_by: str) -> AdjustmentPosting:
    """Positive amounts move points from system:adjustment to the account, negative ones back."""
    credit = adjustment.amount_points > 0
    return AdjustmentPosting(
        transfer_id=f"ops-adjust-{adjustment.adjustment_id}",
        debit_account=ADJUSTMENT_ACCOUNT if credit else adjustment.account_number,
        credit_account=adjustment.account_number if credit else ADJUSTMENT_ACCOUNT,
        amount_points=abs(adjustment.amount_points),
        reference=f"ops-adjustment:{adjustment.adjustment_id}",
        requested_by=adjustment.requested_by,
        approved_by=approved_by,
    )
