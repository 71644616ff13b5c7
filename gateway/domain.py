"""Rules of the gateway, pure Python: the cross-region transfer state machine, its deadlines, and netting.

Nothing here does I/O; transfers.py drives the steps, store.py persists them, clients.py talks to the regions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from service_kit.accounts import region_of
from service_kit.errors import InvalidArgument

TRANSFER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_TRANSFER_POINTS = 10_000_000_000
CLEARING_ACCOUNT = "system:clearing"
POINTS_PER_CNY = 100  # the reference rate: 100 points = 1 CNY = 100 cents, so one point is one cent


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

    @property
    def transfer_id(self) -> str:
        return self.request.transfer_id

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


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


def require_cross_region(request: TransferRequest) -> None:
    if request.from_region == request.to_region:
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


def reference(request: TransferRequest) -> str:
    """Written on every posting of the transfer so settlement can be rebuilt from the ledgers alone."""
    return f"xrt/{request.from_region}/{request.to_region}/{request.transfer_id}"


def parse_reference(value: str) -> tuple[str, str, str] | None:
    """(from_region, to_region, transfer_id) of a cross-region posting's reference, or None for anything else."""
    parts = value.split("/")
    if len(parts) != 4 or parts[0] != "xrt" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return parts[1], parts[2], parts[3]


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


class AnywhereState(StrEnum):
    """Redeem anywhere: points over to the reward's region, the redemption there, or the points back."""

    CREATED = "CREATED"  # recorded; the transfer there is (being) made
    TRANSFERRED = "TRANSFERRED"  # the points are in the target account; redeem next
    REDEEMED = "REDEEMED"  # done: vouchers issued
    UNWINDING = "UNWINDING"  # the redemption was refused; the points go back with their lots
    UNWOUND = "UNWOUND"  # done: refused, points back in the source account
    FAILED = "FAILED"  # done: the transfer there was refused, nothing moved
    STRANDED = "STRANDED"  # done: the transfer back was refused; the points stay in the person's target account


ANYWHERE_FINISHED = frozenset(
    {AnywhereState.REDEEMED, AnywhereState.UNWOUND, AnywhereState.FAILED, AnywhereState.STRANDED}
)
ANYWHERE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,56}$")  # room for the derived transfer ids


@dataclass(frozen=True)
class AnywhereRequest:
    request_id: str
    source_account: str
    target_account: str
    reward_id: str
    quantity: int

    def fingerprint(self) -> str:
        body = f"{self.request_id}|{self.source_account}|{self.target_account}|{self.reward_id}|{self.quantity}"
        return hashlib.sha256(body.encode()).hexdigest()

    def there(self, amount_points: int) -> TransferRequest:
        return TransferRequest(f"ra.{self.request_id}", self.source_account, self.target_account, amount_points)

    def back(self, amount_points: int) -> TransferRequest:
        return TransferRequest(f"ra.{self.request_id}.back", self.target_account, self.source_account, amount_points)

    @property
    def redeem_request_id(self) -> str:
        return f"ra.{self.request_id}"


@dataclass
class Anywhere:
    request: AnywhereRequest
    caller_id: str
    amount_points: int
    state: AnywhereState
    created_at: datetime
    failure_reason: str = ""
    redemption_id: str = ""
    voucher_codes: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.state in ANYWHERE_FINISHED


def validate_anywhere(request: AnywhereRequest) -> None:
    if not ANYWHERE_ID_PATTERN.match(request.request_id):
        raise InvalidArgument("request_id", "must be 1-56 characters of A-Z a-z 0-9 . _ -")
    if not request.reward_id or len(request.reward_id) > 64:
        raise InvalidArgument("reward_id", "must be 1-64 characters")
    if not 1 <= request.quantity <= 1000:
        raise InvalidArgument("quantity", "must be between 1 and 1000")
    if request.source_account == request.target_account:
        raise InvalidArgument("target_account", "must differ from source_account")


@dataclass(frozen=True)
class Position:
    debtor_region: str
    creditor_region: str
    points: int

    @property
    def amount_cents(self) -> int:
        return self.points * 100 // POINTS_PER_CNY


def net_positions(gross: dict[tuple[str, str], int]) -> list[Position]:
    """Multilateral netting: each region's net position, then debtors paired with creditors, largest first.

    gross[(a, b)] = points region a owes region b. The result settles the same net amounts with at most
    (regions - 1) payments.
    """
    net: dict[str, int] = {}
    for (debtor, creditor), points in gross.items():
        net[debtor] = net.get(debtor, 0) - points
        net[creditor] = net.get(creditor, 0) + points
    debtors = sorted(((-value, code) for code, value in net.items() if value < 0), reverse=True)
    creditors = sorted(((value, code) for code, value in net.items() if value > 0), reverse=True)
    owed = [points for points, _ in debtors]
    due = [points for points, _ in creditors]
    positions: list[Position] = []
    i = j = 0
    while i < len(owed) and j < len(due):
        amount = min(owed[i], due[j])
        positions.append(Position(debtors[i][1], creditors[j][1], amount))
        owed[i] -= amount
        due[j] -= amount
        if owed[i] == 0:
            i += 1
        if due[j] == 0:
            j += 1
    return positions
