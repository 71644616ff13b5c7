"""A redemption: points for vouchers of one reward. Which ones are refused and why, and the states it moves through
(PENDING while the ledger holds the points, then COMPLETED or FAILED); docs/adr/0300."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rewards_svc.domain.catalog import Reward, available_in, has_counted_stock
from rewards_svc.domain.limits import Usage, check_limits
from rewards_svc.domain.requests import require_account, require_region_code, require_request_id
from rewards_svc.domain.vouchers import Voucher, VoucherState, new_voucher_code, plan_vouchers, voucher_expiry
from service_kit.errors import FailedPrecondition, InvalidArgument

MAX_QUANTITY = 1_000


class RedemptionState:
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


# The states of a redemption that count against per-account limits.
COUNTED_STATES = (RedemptionState.PENDING, RedemptionState.COMPLETED)


@dataclass(frozen=True)
class RedeemRequest:
    """What a resident asks for: `quantity` units of a reward, redeemed in a region, under a request id."""

    request_id: str
    account_number: str
    reward_id: str
    quantity: int
    region_code: str


@dataclass(frozen=True)
class Redemption:
    redemption_id: str
    request_id: str
    account_number: str
    reward_id: str
    quantity: int
    region_code: str
    # Unit price at the moment of redemption: later price changes do not touch it.
    price_points: int
    amount_points: int
    state: str
    failure_reason: str
    hold_id: str
    created_at: datetime
    vouchers: tuple[Voucher, ...] = ()
    # The Hold's timeout as first sent; a retried Hold repeats it (0: not kept, on rows from before it was).
    hold_timeout_s: int = 0
    # Where the Hold commits in the same ledger call (ADR 0303); empty: Hold and CommitHold sent apart (as on rows
    # from before, and when the setting turns it off). A retried Hold repeats it.
    hold_commit_account: str = ""

    def same_request(self, request: RedeemRequest) -> bool:
        """Whether a retry under this redemption's request id asks for the same thing."""
        return (
            self.account_number == request.account_number
            and self.reward_id == request.reward_id
            and self.quantity == request.quantity
            and self.region_code == request.region_code
        )


def validate_redeem(request: RedeemRequest) -> None:
    require_request_id(request.request_id)
    require_account(request.account_number)
    if not request.reward_id:
        raise InvalidArgument("reward_id", "required")
    if not 1 <= request.quantity <= MAX_QUANTITY:
        raise InvalidArgument("quantity", f"between 1 and {MAX_QUANTITY}")
    require_region_code(request.region_code)


def new_redemption(
    redemption_id: str,
    request: RedeemRequest,
    reward: Reward,
    now: datetime,
    refusal_reason: str,
    hold_timeout_s: int,
    hold_commit_account: str = "",
) -> Redemption:
    """A redemption at the reward's price of this moment: PENDING, or FAILED with the reason it was refused (kept, so
    a retry with the same request id gets the same answer)."""
    return Redemption(
        redemption_id=redemption_id,
        request_id=request.request_id,
        account_number=request.account_number,
        reward_id=request.reward_id,
        quantity=request.quantity,
        region_code=request.region_code,
        price_points=reward.price_points,
        amount_points=reward.price_points * request.quantity,
        state=RedemptionState.FAILED if refusal_reason else RedemptionState.PENDING,
        failure_reason=refusal_reason,
        hold_id=hold_id_for(redemption_id),
        created_at=now,
        hold_timeout_s=hold_timeout_s,
        hold_commit_account=hold_commit_account,
    )


def vouchers_for(redemption: Redemption, reward: Reward, now: datetime) -> tuple[Voucher, ...]:
    """The vouchers a redemption issues, with new codes; terms and lifetime from the reward it was checked against."""
    return tuple(
        Voucher(
            code=new_voucher_code(),
            redemption_id=redemption.redemption_id,
            seq=plan.seq,
            reward_id=reward.reward_id,
            account_number=redemption.account_number,
            units=plan.units,
            price_points=plan.price_points,
            state=VoucherState.ISSUED,
            issued_at=now,
            expires_at=voucher_expiry(now, reward.voucher_lifetime_days),
            used_at=None,
            terms=reward.terms,
        )
        for plan in plan_vouchers(reward, redemption.quantity, redemption.price_points)
    )


def check_redeemable(reward: Reward, region_code: str, quantity: int, usage: Usage, now: datetime) -> None:
    """Raises FailedPrecondition with the reason a redemption is refused; stock is checked last."""
    if reward.retired:
        raise FailedPrecondition("REWARD_RETIRED", f"reward {reward.reward_id} is retired")
    if not available_in(reward, region_code):
        raise FailedPrecondition(
            "NOT_AVAILABLE_IN_REGION",
            f"reward {reward.reward_id} is redeemable only in {', '.join(reward.region_codes)}",
            {"region_code": region_code, "allowed_regions": ",".join(reward.region_codes)},
        )
    if reward.available_from is not None and now < reward.available_from:
        raise FailedPrecondition("NOT_YET_AVAILABLE", f"reward {reward.reward_id} opens later")
    if reward.available_until is not None and now >= reward.available_until:
        raise FailedPrecondition("NO_LONGER_AVAILABLE", f"reward {reward.reward_id} has closed")
    check_limits(reward, quantity, usage)
    if has_counted_stock(reward) and reward.stock < quantity:
        raise FailedPrecondition("OUT_OF_STOCK", f"reward {reward.reward_id} is out of stock", {"stock": reward.stock})


def hold_id_for(redemption_id: str) -> str:
    """The ledger hold of a redemption; the transfer its commit posts has the same id (the ledger's contract)."""
    return f"rewards:redeem:{redemption_id}"
