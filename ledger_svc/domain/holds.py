"""Holds (two-phase): reserve points with a timeout, then commit all or part, or release; resolved exactly once."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from ledger_svc.domain.fingerprints import fingerprint_of, metadata_json
from ledger_svc.domain.lots import Portion
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.refusal import Refusal
from ledger_svc.domain.transfers import ItemResult, Posting
from service_kit.errors import AlreadyExists, DomainError, FailedPrecondition, InvalidArgument

MAX_HOLD_TIMEOUT_US = 7 * 86_400 * 1_000_000
DEFAULT_HOLD_TIMEOUT_US = 15 * 60 * 1_000_000


class HoldState(IntEnum):
    """Mirrors carbon.ledger.v1.HoldState."""

    PENDING = 1
    COMMITTED = 2
    RELEASED = 3
    EXPIRED = 4


@dataclass
class Hold:
    hold_id: str
    account: str
    amount_points: int
    state: HoldState
    expires_at_us: int
    code: int
    fingerprint: str
    created_at_us: int
    reference: str = ""
    metadata_json: str = ""
    committed_points: int = 0
    credit_account: str = ""
    lots: list[Portion] = field(default_factory=list)

    def state_at(self, now_us: int) -> HoldState:
        """A pending hold whose timeout passed counts as expired (released) at once, sweep or not."""
        if self.state is HoldState.PENDING and self.expires_at_us <= now_us:
            return HoldState.EXPIRED
        return self.state

    def commit_amount(self, requested_points: int) -> int:
        """The points a commit moves: 0 means the whole hold; more than the hold is refused."""
        if requested_points < 0:
            raise Refusal("INVALID_AMOUNT", "amount_points must not be negative")
        if requested_points > self.amount_points:
            raise Refusal("INVALID_AMOUNT", f"amount_points {requested_points} exceeds the hold's {self.amount_points}")
        return requested_points or self.amount_points

    def check_commit(self, now_us: int) -> None:
        state = self.state_at(now_us)
        if state is HoldState.RELEASED:
            raise Refusal("HOLD_RELEASED", f"hold {self.hold_id} was released")
        if state is HoldState.EXPIRED:
            raise Refusal("HOLD_EXPIRED", f"hold {self.hold_id} timed out before the commit")

    def is_same_commit(self, requested_points: int, credit_account: str) -> bool:
        """Whether a commit request repeats the one that resolved this hold."""
        return (
            self.state is HoldState.COMMITTED
            and self.credit_account == credit_account
            and (requested_points or self.amount_points) == self.committed_points
        )


@dataclass(frozen=True)
class HoldRequest:
    hold_id: str
    account: str
    amount_points: int
    timeout_us: int = 0  # 0: the default timeout
    code: int = 0  # 0: REDEEM
    reference: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    # Not empty: the hold is committed, whole, to this account in the same transaction (ADR 0122).
    commit_to_account: str = ""

    @property
    def effective_code(self) -> int:
        return self.code or int(TransferCode.REDEEM)

    @property
    def effective_timeout_us(self) -> int:
        return self.timeout_us or DEFAULT_HOLD_TIMEOUT_US

    def fingerprint(self) -> str:
        """What "the same hold" means for idempotency: every field but the id, defaults filled in."""
        body = [
            "hold",
            self.account,
            self.amount_points,
            self.effective_timeout_us,
            self.effective_code,
            self.reference,
            sorted(self.metadata),
        ]
        if self.commit_to_account:  # only then: the fingerprints of plain holds stay what they were
            body.append(["commit_to", self.commit_to_account])
        return fingerprint_of(body)

    def pending_hold(self, now_us: int) -> Hold:
        """The hold this request places at `now_us`, before its lots are taken."""
        return Hold(
            hold_id=self.hold_id,
            account=self.account,
            amount_points=self.amount_points,
            state=HoldState.PENDING,
            expires_at_us=now_us + self.effective_timeout_us,
            code=self.effective_code,
            fingerprint=self.fingerprint(),
            created_at_us=now_us,
            reference=self.reference,
            metadata_json=metadata_json(dict(self.metadata)),
        )


def check_repeated_commit(hold: Hold, requested_points: int, credit_account: str) -> None:
    """A commit of a committed hold must repeat the commit that resolved it."""
    if not hold.is_same_commit(requested_points, credit_account):
        raise reused_key(
            "hold_id", hold.hold_id, "the hold was committed before with a different amount or credit account"
        )


def checked_commit_amount(hold: Hold, amount_points: int, now_us: int) -> int:
    """The points a commit of a pending hold moves, or the error that refuses it."""
    try:
        hold.check_commit(now_us)
        return hold.commit_amount(amount_points)
    except Refusal as refusal:
        if refusal.reason == "INVALID_AMOUNT":
            raise InvalidArgument("amount_points", refusal.message) from None
        raise FailedPrecondition(refusal.reason, refusal.message, {"hold_id": hold.hold_id}) from None


def commit_posting(
    hold: Hold,
    credit_account: str,
    committed: list[Portion],
    now_us: int,
    debit_balance_after: int,
    credit_balance_after: int | None = None,
    credit_lots: list[Portion] | None = None,
) -> Posting:
    """The transfer a commit posts: id = hold id, the committed portions taken from the held account."""
    amount = sum(portion.amount_points for portion in committed)
    return Posting(
        transfer_id=hold.hold_id,
        debit_account=hold.account,
        credit_account=credit_account,
        amount_points=amount,
        code=hold.code,
        posted_at_us=now_us,
        fingerprint=fingerprint_of(["commit", hold.hold_id, credit_account, amount]),
        reference=hold.reference,
        metadata_json=hold.metadata_json,
        debit_balance_after=debit_balance_after,
        credit_balance_after=credit_balance_after,
        debit_lots=committed,
        credit_lots=credit_lots or [],
    )


def reused_key(field: str, value: str, detail: str = "") -> AlreadyExists:
    """The error for an idempotency key (hold id, commit) used before with another body."""
    message = detail or f"{value!r} was used before with a different body"
    return AlreadyExists("IDEMPOTENCY_KEY_REUSED", f"{field} {value!r}: {message}", {"field": field})


MAX_BATCH_HOLDS = 1000


class ItemStatus(IntEnum):
    """Mirrors carbon.ledger.v1.HoldItemStatus: what one item of a batched hold call did."""

    DONE = 1
    REPEATED = 2
    FAILED = 3


@dataclass(frozen=True)
class HoldOutcome:
    """One item of HoldBatch, CommitHolds or ReleaseHolds: what the unary call would have answered, as a value.
    `hold` for DONE and REPEATED; `result` where the item commits; `error` (the unary call's error) for FAILED."""

    hold_id: str
    status: ItemStatus
    hold: Hold | None = None
    result: ItemResult | None = None
    error: DomainError | None = None

    @classmethod
    def failed(cls, hold_id: str, error: DomainError) -> HoldOutcome:
        return cls(hold_id, ItemStatus.FAILED, error=error)


class CommitItem(NamedTuple):
    """One CommitHolds item, as CommitHoldRequest."""

    hold_id: str
    amount_points: int
    credit_account: str


@dataclass(frozen=True)
class Refused:
    """An item refused before the transaction: its wire form (e.g. a bad timeout) or its fields."""

    hold_id: str
    error: DomainError
