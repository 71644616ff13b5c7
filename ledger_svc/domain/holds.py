"""Holds (two-phase): reserve points with a timeout, then commit all or part, or release; resolved exactly once."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ledger_svc.domain.lots import Portion, Refusal

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
