"""The rules of spending points: rewards, limits, stock, the redemption and voucher states. Pure Python, no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from service_kit.accounts import is_account_number
from service_kit.errors import FailedPrecondition, InvalidArgument

Clock = Callable[[], datetime]
CHINA_STANDARD_TIME = ZoneInfo("Asia/Shanghai")

UNLIMITED_STOCK = -1
MAX_QUANTITY = 1_000
MAX_PRICE_POINTS = 10_000_000
MAX_REQUEST_ID_LENGTH = 128
REWARD_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REGION_CODE_PATTERN = re.compile(r"^[0-9]{6}$")

CATEGORIES = ("PRACTICAL", "CULTURE_TOURISM", "CHARITY")


class RedemptionState:
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class VoucherState:
    ISSUED = "ISSUED"
    USED = "USED"
    # A cancel was decided and its refund is on the way (or must be retried); shown to callers as CANCELLED.
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


# The states of a redemption that count against per-account limits.
COUNTED_STATES = (RedemptionState.PENDING, RedemptionState.COMPLETED)


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in rewards_svc is timezone-aware")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Reward:
    reward_id: str
    name_en: str
    name_zh: str
    category: str
    price_points: int
    face_value_cents: int
    provider: str
    # Empty: redeemable nationwide.
    region_codes: tuple[str, ...]
    # UNLIMITED_STOCK (-1) or the units left.
    stock: int
    # 0 means no limit.
    limit_per_day: int
    limit_per_month: int
    limit_lifetime: int
    available_from: datetime | None
    available_until: datetime | None
    voucher_lifetime_days: int
    divisible: bool = False
    retired: bool = False
    terms: str = ""


# The fields ops may change with UpdateReward (reward_id and retired have their own operations).
UPDATABLE_FIELDS = frozenset(field.name for field in dataclasses.fields(Reward)) - {"reward_id", "retired"}


def validate_reward(reward: Reward, prefix: str = "reward") -> None:
    """Raises InvalidArgument naming the first field that is wrong."""

    def check(condition: bool, name: str, message: str) -> None:
        if not condition:
            raise InvalidArgument(f"{prefix}.{name}", message)

    check(bool(REWARD_ID_PATTERN.match(reward.reward_id)), "reward_id", "lower-case letters, digits, _ or -, ≤64")
    check(0 < len(reward.name_en) <= 200, "name_en", "required, at most 200 characters")
    check(len(reward.name_zh) <= 200, "name_zh", "at most 200 characters")
    check(reward.category in CATEGORIES, "category", f"one of {', '.join(CATEGORIES)}")
    check(0 < reward.price_points <= MAX_PRICE_POINTS, "price_points", f"between 1 and {MAX_PRICE_POINTS}")
    check(reward.face_value_cents >= 0, "face_value_cents", "must not be negative")
    check(0 < len(reward.provider) <= 200, "provider", "required, at most 200 characters")
    for code in reward.region_codes:
        check(bool(REGION_CODE_PATTERN.match(code)), "region_codes", f"6-digit GB/T 2260 codes, got {code!r}")
    check(len(set(reward.region_codes)) == len(reward.region_codes), "region_codes", "each region once")
    check(reward.stock >= UNLIMITED_STOCK, "stock", "-1 (unlimited) or the units left")
    for name in ("limit_per_day", "limit_per_month", "limit_lifetime"):
        check(getattr(reward, name) >= 0, name, "0 (no limit) or a positive count")
    check(1 <= reward.voucher_lifetime_days <= 3660, "voucher_lifetime_days", "between 1 and 3660")
    if reward.available_from is not None and reward.available_until is not None:
        check(reward.available_until > reward.available_from, "available_until", "must be after available_from")
    check(len(reward.terms) <= 4000, "terms", "at most 4000 characters")


def apply_update(current: Reward, changes: Reward, mask: Sequence[str]) -> Reward:
    """The reward with the masked fields taken from `changes`; validated. Retired rewards do not change."""
    if not mask:
        raise InvalidArgument("update_mask", "name at least one field to change")
    unknown = [name for name in mask if name not in UPDATABLE_FIELDS]
    if unknown:
        raise InvalidArgument("update_mask", f"cannot change {', '.join(unknown)}")
    if current.retired:
        raise FailedPrecondition("REWARD_RETIRED", f"reward {current.reward_id} is retired")
    updated = dataclasses.replace(current, **{name: getattr(changes, name) for name in mask})
    validate_reward(updated)
    return updated


@dataclass(frozen=True)
class Usage:
    """Limit units an account already used of one reward (PENDING and COMPLETED redemptions)."""

    today: int
    this_month: int
    lifetime: int


def limit_units(reward: Reward, quantity: int) -> int:
    """What one redemption counts against the limits: 1 for a divisible reward, else its quantity."""
    return 1 if reward.divisible else quantity


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    """The start of today and of this month in China Standard Time, as UTC instants."""
    local = utc(now).astimezone(CHINA_STANDARD_TIME)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day.astimezone(UTC), day.replace(day=1).astimezone(UTC)


def validate_redeem(account_number: str, reward_id: str, quantity: int, region_code: str, request_id: str) -> None:
    require_request_id(request_id)
    if not is_account_number(account_number):
        raise InvalidArgument("account_number", "a 16-digit account number with a valid check digit")
    if not reward_id:
        raise InvalidArgument("reward_id", "required")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidArgument("quantity", f"between 1 and {MAX_QUANTITY}")
    if not REGION_CODE_PATTERN.match(region_code):
        raise InvalidArgument("region_code", "a 6-digit GB/T 2260 region code")


def check_redeemable(reward: Reward, region_code: str, quantity: int, usage: Usage, now: datetime) -> None:
    """Raises FailedPrecondition with the reason a redemption is refused; stock is checked last."""
    if reward.retired:
        raise FailedPrecondition("REWARD_RETIRED", f"reward {reward.reward_id} is retired")
    if reward.region_codes and region_code not in reward.region_codes:
        raise FailedPrecondition(
            "NOT_AVAILABLE_IN_REGION",
            f"reward {reward.reward_id} is redeemable only in {', '.join(reward.region_codes)}",
            {"region_code": region_code, "allowed_regions": ",".join(reward.region_codes)},
        )
    if reward.available_from is not None and now < reward.available_from:
        raise FailedPrecondition("NOT_YET_AVAILABLE", f"reward {reward.reward_id} opens later")
    if reward.available_until is not None and now >= reward.available_until:
        raise FailedPrecondition("NO_LONGER_AVAILABLE", f"reward {reward.reward_id} has closed")
    units = limit_units(reward, quantity)
    for period, limit, used in (
        ("day", reward.limit_per_day, usage.today),
        ("month", reward.limit_per_month, usage.this_month),
        ("lifetime", reward.limit_lifetime, usage.lifetime),
    ):
        if limit and used + units > limit:
            raise FailedPrecondition(
                "LIMIT_REACHED",
                f"at most {limit} per account per {period}",
                {"period": period, "limit": limit, "used": used},
            )
    if reward.stock != UNLIMITED_STOCK and reward.stock < quantity:
        raise FailedPrecondition("OUT_OF_STOCK", f"reward {reward.reward_id} is out of stock", {"stock": reward.stock})


def hold_id_for(redemption_id: str) -> str:
    """The ledger hold of a redemption; the transfer its commit posts has the same id (the ledger's contract)."""
    return f"rewards:redeem:{redemption_id}"


def refund_id_for(hold_id: str, seq: int) -> str:
    """One refund per voucher at most, whatever cancel request asks for it."""
    return f"{hold_id}:refund:{seq}"


def donation_transfer_id(donation_id: str) -> str:
    return f"rewards:donate:{donation_id}"


@dataclass(frozen=True)
class VoucherPlan:
    seq: int
    units: int
    price_points: int


def plan_vouchers(reward: Reward, quantity: int, unit_price_points: int) -> list[VoucherPlan]:
    """A divisible reward gets one voucher for the whole quantity; any other one voucher per unit."""
    if reward.divisible:
        return [VoucherPlan(0, quantity, quantity * unit_price_points)]
    return [VoucherPlan(seq, 1, unit_price_points) for seq in range(quantity)]


# Crockford's base32 without I, L, O, U: nothing to misread at a counter.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
VOUCHER_CODE_CHARS = 20  # 100 bits from the OS's CSPRNG


def new_voucher_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(VOUCHER_CODE_CHARS))
    return "-".join(raw[index : index + 4] for index in range(0, VOUCHER_CODE_CHARS, 4))


def normalize_voucher_code(code: str) -> str:
    compact = code.strip().upper().replace("-", "").replace(" ", "")
    if len(compact) != VOUCHER_CODE_CHARS or any(char not in _CODE_ALPHABET for char in compact):
        raise InvalidArgument("code", "a voucher code of 20 letters and digits")
    return "-".join(compact[index : index + 4] for index in range(0, VOUCHER_CODE_CHARS, 4))


def voucher_expiry(issued_at: datetime, lifetime_days: int) -> datetime:
    """Vouchers run to the end of the last day of their lifetime, China Standard Time."""
    local = utc(issued_at).astimezone(CHINA_STANDARD_TIME) + timedelta(days=lifetime_days)
    end = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return end.astimezone(UTC)


@dataclass(frozen=True)
class Voucher:
    code: str
    redemption_id: str
    seq: int
    reward_id: str
    account_number: str
    units: int
    price_points: int
    state: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None
    terms: str


def visible_state(state: str) -> str:
    return VoucherState.CANCELLED if state == VoucherState.CANCELLING else state


def check_open(voucher: Voucher, now: datetime) -> None:
    """An ISSUED voucher before its expiry; otherwise the reason it is not."""
    if voucher.state == VoucherState.USED:
        raise FailedPrecondition("VOUCHER_ALREADY_USED", "the voucher was used already")
    if voucher.state in (VoucherState.CANCELLED, VoucherState.CANCELLING):
        raise FailedPrecondition("VOUCHER_CANCELLED", "the voucher was cancelled")
    if voucher.state == VoucherState.EXPIRED or now >= voucher.expires_at:
        raise FailedPrecondition("VOUCHER_EXPIRED", "the voucher has expired")


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

    def same_request(self, account_number: str, reward_id: str, quantity: int, region_code: str) -> bool:
        return (self.account_number, self.reward_id, self.quantity, self.region_code) == (
            account_number,
            reward_id,
            quantity,
            region_code,
        )


@dataclass(frozen=True)
class CharityProject:
    project_id: str
    name_en: str
    name_zh: str
    points_per_unit: int
    impact_unit: str
    units_region: int = 0
    donated_points_region: int = 0


def donation_units(project: CharityProject, amount_points: int) -> int:
    if amount_points <= 0 or amount_points % project.points_per_unit:
        raise InvalidArgument(
            "amount_points",
            f"a positive multiple of {project.points_per_unit} ({project.points_per_unit} points = 1 "
            f"{project.impact_unit})",
        )
    return amount_points // project.points_per_unit


@dataclass(frozen=True)
class Recommendation:
    reward: Reward
    affordable: bool
    missing_points: int


def redeemable_here(reward: Reward, region_code: str, now: datetime) -> bool:
    return (
        not reward.retired
        and reward.stock != 0
        and (not reward.region_codes or region_code in reward.region_codes)
        and (reward.available_from is None or reward.available_from <= now)
        and (reward.available_until is None or now < reward.available_until)
    )


def recommend(
    rewards: Iterable[Reward], available_points: int, region_code: str, now: datetime, max_results: int
) -> list[Recommendation]:
    """Affordable rewards, dearest first (the most the points buy), then the nearest ones still out of reach."""
    candidates = [reward for reward in rewards if redeemable_here(reward, region_code, now)]
    affordable = sorted(
        (reward for reward in candidates if reward.price_points <= available_points),
        key=lambda reward: (-reward.price_points, reward.reward_id),
    )
    out_of_reach = sorted(
        (reward for reward in candidates if reward.price_points > available_points),
        key=lambda reward: (reward.price_points, reward.reward_id),
    )
    return [Recommendation(reward, True, 0) for reward in affordable[:max_results]] + [
        Recommendation(reward, False, reward.price_points - available_points) for reward in out_of_reach[:max_results]
    ]


def require_account(account_number: str) -> None:
    if not is_account_number(account_number):
        raise InvalidArgument("account_number", "a 16-digit account number with a valid check digit")


def require_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgument("request_id", f"required, at most {MAX_REQUEST_ID_LENGTH} characters")


def fingerprint(*parts: object) -> str:
    """A stable digest of a request's body, to tell a retry from a reused idempotency key."""
    canonical = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
