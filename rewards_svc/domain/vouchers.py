"""Vouchers: how a redemption is split into vouchers, their codes, how long they run, and their states."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from rewards_svc.domain.catalog import Reward
from service_kit.clock import china_day, start_of_china_day
from service_kit.errors import FailedPrecondition, InvalidArgument


class VoucherState:
    ISSUED = "ISSUED"
    USED = "USED"
    # A cancel was decided and its refund is on the way (or must be retried); shown to callers as CANCELLED.
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


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


@dataclass(frozen=True)
class VoucherPlan:
    seq: int
    units: int
    price_points: int


def plan_vouchers(reward: Reward, quantity: int, unit_price_points: int) -> list[VoucherPlan]:
    """A divisible reward gets one voucher for the whole quantity; any other one voucher per unit."""
    if reward.divisible:
        return [VoucherPlan(seq=0, units=quantity, price_points=quantity * unit_price_points)]
    return [VoucherPlan(seq=seq, units=1, price_points=unit_price_points) for seq in range(quantity)]


# Crockford's base32 without I, L, O, U: nothing to misread at a counter.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
VOUCHER_CODE_CHARS = 20  # 100 bits from the OS's CSPRNG


def new_voucher_code() -> str:
    # One draw of 100 bits, five per letter (the alphabet has 32): as uniform as a draw per letter, one syscall.
    bits = secrets.randbits(5 * VOUCHER_CODE_CHARS)
    raw = "".join(_CODE_ALPHABET[(bits >> (5 * index)) & 31] for index in range(VOUCHER_CODE_CHARS))
    return "-".join(raw[index : index + 4] for index in range(0, VOUCHER_CODE_CHARS, 4))


def normalize_voucher_code(code: str) -> str:
    compact = code.strip().upper().replace("-", "").replace(" ", "")
    if len(compact) != VOUCHER_CODE_CHARS or any(char not in _CODE_ALPHABET for char in compact):
        raise InvalidArgument("code", "a voucher code of 20 letters and digits")
    return "-".join(compact[index : index + 4] for index in range(0, VOUCHER_CODE_CHARS, 4))


def voucher_expiry(issued_at: datetime, lifetime_days: int) -> datetime:
    """Vouchers run to the end of the last day of their lifetime, China Standard Time."""
    return start_of_china_day(china_day(issued_at) + timedelta(days=lifetime_days + 1))


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


def refund_id_for(hold_id: str, seq: int) -> str:
    """One refund per voucher at most, whatever cancel request asks for it."""
    return f"{hold_id}:refund:{seq}"
