"""Cross-region transfers: the request, the stored transfer, its state machine, the ids and deadlines of its steps.

CREATED --Hold in A--> HELD --decision COMMIT--> credit B --> CREDITED --CommitHold in A--> COMMITTED
   any refusal before the decision: decision ABORT --ReleaseHold in A--> RELEASED (with the reason)
   A's hold expired after B was credited: debit A plainly, else take B's credit back (REVERSE), else UNKNOWN.
   CREDITED is stored only when A's commit does not simply succeed: otherwise HELD goes to COMMITTED in one write.
See docs/adr/0601-cross-region-transfer-protocol.md (and 0614 for the skipped write).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from service_kit.accounts import region_of
from service_kit.errors import InvalidArgument

TRANSFER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_TRANSFER_POINTS = 10_000_000_000
# A step that found a region down is retried after this delay, doubled per failed attempt (MAX_RETRY_DOUBLINGS times
# at most) and capped by the gateway's retry_max.
FIRST_RETRY_DELAY = timedelta(milliseconds=200)
MAX_RETRY_DOUBLINGS = 10
# Transfers the recovery loop leases and drives per batch (docs/adr/0621).
BATCH_TRANSFERS = 128


class State(StrEnum):
    CREATED = "CREATED"
    HELD = "HELD"
    CREDITED = "CREDITED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    UNKNOWN = "UNKNOWN"


FINISHED = frozenset({State.COMMITTED, State.RELEASED})


class Decision(StrEnum):
    NONE = ""
    COMMIT = "COMMIT"
    ABORT = "ABORT"
    # After COMMIT, when the hold expired before A's commit and A could not be debited late: take B's credit back.
    REVERSE = "REVERSE"


class Step(StrEnum):
    """What a transfer does next; each step is idempotent at the region it calls."""

    HOLD = "HOLD"  # hold the points in A
    DECIDE = "DECIDE"  # record COMMIT if the hold outlives the rest of the protocol, else ABORT
    CREDIT = "CREDIT"  # credit B from its clearing account, recreating the held lots
    COMMIT = "COMMIT"  # commit A's hold to A's clearing account (or debit A late if the hold ran out)
    RELEASE = "RELEASE"  # release A's hold: the transfer was aborted
    REVERSE = "REVERSE"  # take B's credit back: A could be neither committed nor debited


@dataclass(frozen=True)
class Timing:
    """The deadlines of the protocol. Every downstream call ends before the hold does, minus `margin`."""

    transfer_life: timedelta = timedelta(seconds=60)
    call_timeout: timedelta = timedelta(seconds=5)
    margin: timedelta = timedelta(seconds=2)

    @property
    def rest_after_decision(self) -> timedelta:
        """What crediting B and committing A may take at worst: the hold must outlive this to decide COMMIT."""
        return 2 * self.call_timeout + 2 * self.margin

    @property
    def lease(self) -> timedelta:
        """How long a driver owns a transfer per step; renewed before each step, so a crashed driver's lease runs
        out within one call timeout and the recovery loop takes over."""
        return self.call_timeout + self.margin


@dataclass(frozen=True)
class HeldLot:
    """A portion of a lot the source hold took; recreated in the destination with the same expiry."""

    lot_id: str
    earned_on: str  # ISO date
    expires_at: datetime
    amount_points: int


@dataclass(frozen=True)
class TransferRequest:
    transfer_id: str
    from_account: str
    to_account: str
    amount_points: int

    @property
    def from_region(self) -> str:
        return region_of(self.from_account)

    @property
    def to_region(self) -> str:
        return region_of(self.to_account)

    def fingerprint(self) -> str:
        """What makes two requests with one transfer id "the same body"."""
        body = f"{self.transfer_id}|{self.from_account}|{self.to_account}|{self.amount_points}"
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class Transfer:
    request: TransferRequest
    caller_id: str
    state: State
    decision: Decision
    created_at: datetime
    expires_at: datetime
    hold_timeout_ms: int
    failure_reason: str = ""
    finished_at: datetime | None = None
    hold_expires_at: datetime | None = None
    held_lots: list[HeldLot] = field(default_factory=list)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    # Lots the destination recreates instead of held_lots: an unwind gives back the very lots that came over.
    carry_lots: list[HeldLot] = field(default_factory=list)
    # Who asked on the resident's behalf: "platform:<code>" or "staff:<staff id>" (their authorization's actor).
    authorized_by: str = ""

    @property
    def transfer_id(self) -> str:
        return self.request.transfer_id

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def settled(self) -> bool:
        """Nothing more the gateway can do on its own: finished, or UNKNOWN until an operator settles it."""
        return self.finished or self.state is State.UNKNOWN


def new_transfer(
    request: TransferRequest,
    caller_id: str,
    now: datetime,
    timing: Timing,
    carry_lots: Sequence[HeldLot] = (),
    authorized_by: str = "",
) -> Transfer:
    """A transfer as first recorded: CREATED, living `timing.transfer_life` from now."""
    expires_at = now + timing.transfer_life
    return Transfer(
        request=request,
        caller_id=caller_id,
        state=State.CREATED,
        decision=Decision.NONE,
        created_at=now,
        expires_at=expires_at,
        hold_timeout_ms=hold_timeout_ms(now, expires_at),
        carry_lots=list(carry_lots),
        authorized_by=authorized_by,
    )


def next_step(transfer: Transfer) -> Step:
    """The step an unsettled transfer takes next, from its state and its durable decision."""
    state, decision = transfer.state, transfer.decision
    if decision is Decision.NONE and state is State.CREATED:
        return Step.HOLD
    if decision is Decision.NONE and state is State.HELD:
        return Step.DECIDE
    if decision is Decision.COMMIT and state is State.HELD:
        return Step.CREDIT
    if decision is Decision.ABORT and state in (State.CREATED, State.HELD):
        return Step.RELEASE
    if decision is Decision.COMMIT and state is State.CREDITED:
        return Step.COMMIT
    if decision is Decision.REVERSE and state is State.CREDITED:
        return Step.REVERSE
    raise AssertionError(f"transfer {transfer.transfer_id}: no step for {(state, decision)}")


def validate_request(request: TransferRequest) -> None:
    """Raises InvalidArgument naming the first bad field. Account numbers are checked by the registry."""
    if not TRANSFER_ID_PATTERN.match(request.transfer_id):
        raise InvalidArgument("transfer_id", "must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if request.amount_points <= 0:
        raise InvalidArgument("amount_points", "must be a positive whole number of points")
    if request.amount_points > MAX_TRANSFER_POINTS:
        raise InvalidArgument("amount_points", f"must be at most {MAX_TRANSFER_POINTS}")
    if request.from_account == request.to_account:
        raise InvalidArgument("to_account", "must differ from from_account")


def require_cross_region(from_account: str, to_account: str) -> None:
    if region_of(from_account) == region_of(to_account):
        raise InvalidArgument("to_account", "must be in another region than from_account (use the region's ledger)")


# Ids derived from the transfer id: every step is idempotent at the receiving ledger.
def hold_id(transfer_id: str) -> str:
    return f"xrt:{transfer_id}"


def credit_id(transfer_id: str) -> str:
    return f"xrt:{transfer_id}:in"


def late_debit_id(transfer_id: str) -> str:
    return f"xrt:{transfer_id}:out-late"


def reversal_id(transfer_id: str) -> str:
    return f"xrt:{transfer_id}:in-reversal"


class ClearingReference(NamedTuple):
    """What every posting of a cross-region transfer names, so settlement can be rebuilt from the ledgers alone."""

    from_region: str
    to_region: str
    transfer_id: str


def reference(request: TransferRequest) -> str:
    """The reference written on every posting of the transfer: "xrt/<from region>/<to region>/<transfer id>"."""
    return f"xrt/{request.from_region}/{request.to_region}/{request.transfer_id}"


def parse_reference(value: str) -> ClearingReference | None:
    """The cross-region transfer a posting's reference names, or None for any other reference."""
    parts = value.split("/")
    if len(parts) != 4 or parts[0] != "xrt" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return ClearingReference(from_region=parts[1], to_region=parts[2], transfer_id=parts[3])


def call_deadline(now: datetime, hold_expires_at: datetime | None, timing: Timing) -> float:
    """Seconds a downstream call may take: the call timeout, shortened to end `margin` before the hold expires."""
    budget = timing.call_timeout
    if hold_expires_at is not None:
        budget = min(budget, hold_expires_at - now - timing.margin)
    return max(budget.total_seconds(), 0.0)


def may_decide_commit(now: datetime, hold_expires_at: datetime, timing: Timing) -> bool:
    """Credit B only if the hold comfortably outlives everything the protocol still has to do."""
    return hold_expires_at - now > timing.rest_after_decision


def hold_timeout_ms(created_at: datetime, expires_at: datetime) -> int:
    """The hold lives as long as the transfer; fixed at creation so a re-sent Hold carries the same body."""
    return max(int((expires_at - created_at).total_seconds() * 1000), 1)


def retry_delay(attempts: int, retry_max: timedelta) -> timedelta:
    """How long a step waits after `attempts` failed tries to reach a region: doubling, capped at `retry_max`."""
    doubling: int = 2 ** min(attempts, MAX_RETRY_DOUBLINGS)
    return min(FIRST_RETRY_DELAY * doubling, retry_max)
