"""Reminders as plain rules (ADR 0113): what a notice must hold, where it goes, how it is signed, when it is tried
again. Identity owns the outbox because it alone holds what delivery needs: the account's platform binding, its
phone number (inside the sealed real-name record) and the resident's choice to hear no reminders."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum, StrEnum
from typing import NamedTuple

from identity_svc.domain.accounts import validate_account_number
from service_kit.errors import InvalidArgument

MAX_NOTICES = 1000
MAX_KEY_LENGTH = 128
# Attempts per notice before it goes to the dead-letter list; waits between them double from the first.
RETRY_BUDGET = 5
FIRST_RETRY_US = 30 * 1_000_000
MAX_RETRY_US = 6 * 3600 * 1_000_000
SIGNATURE_HEADER = "X-Carbon-Signature"
TIMESTAMP_HEADER = "X-Carbon-Timestamp"
NOTICE_KEY_HEADER = "X-Carbon-Notice-Key"


class ReminderKind(IntEnum):
    """Mirrors carbon.identity.v1.ReminderKind."""

    EXPIRING_SOON = 1
    MONTHLY_DIGEST = 2


class QueueOutcome(IntEnum):
    """Mirrors carbon.identity.v1.ReminderQueueOutcome."""

    QUEUED = 1
    DUPLICATE = 2
    OPTED_OUT = 3
    NO_ROUTE = 4


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class Notice:
    notice_key: str
    account_number: str
    kind: ReminderKind
    points: int
    expires_on: date | None
    period: str

    def body(self) -> dict[str, object]:
        """The webhook's JSON body (and the source of the SMS text): no personal data beyond the account number."""
        return {
            "notice_key": self.notice_key,
            "account_number": self.account_number,
            "kind": self.kind.name,
            "points": self.points,
            "expires_on": self.expires_on.isoformat() if self.expires_on else "",
            "period": self.period,
        }


def validate_notice(notice: Notice, index: int) -> Notice:
    field = f"notices[{index}]"
    key = notice.notice_key
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidArgument(f"{field}.notice_key", f"must be 1-{MAX_KEY_LENGTH} printable ASCII characters")
    validate_account_number(notice.account_number, f"{field}.account_number")
    if notice.kind not in tuple(ReminderKind):
        raise InvalidArgument(f"{field}.kind", "must be EXPIRING_SOON or MONTHLY_DIGEST")
    if notice.points < 0:
        raise InvalidArgument(f"{field}.points", "must not be negative")
    return notice


def validate_batch(notices: list[Notice]) -> list[Notice]:
    if not 1 <= len(notices) <= MAX_NOTICES:
        raise InvalidArgument("notices", f"must hold 1-{MAX_NOTICES} notices", reason="BATCH_TOO_LARGE")
    return [validate_notice(notice, index) for index, notice in enumerate(notices)]


def route_for(platforms: list[str], has_phone: bool) -> str:
    """The account's first platform binding by webhook; without one (opened at a counter), SMS to its phone."""
    if platforms:
        return f"webhook:{sorted(platforms)[0]}"
    return "sms" if has_phone else ""


# Delivered (and skipped) notices stay in the outbox this long, for operators and residents' questions, and are then
# deleted in batches by the delivery loop once their horizon has passed; dead letters stay until an operator acts.
RETENTION_DAYS = 90
PRUNE_BATCH = 1000
PRUNE_EVERY_S = 3600.0


class Horizon(NamedTuple):
    """Where a notice's horizon stands on a day: an expiring notice is moot once its points' expiry day has passed
    (`expires_on` before `today`), a digest once the month after its period has ended (`period` before
    `previous_month`). Compared as ISO text, which sorts as the dates do (the outbox stores them so)."""

    today: str
    previous_month: str


def horizon_on(today: date) -> Horizon:
    previous = today.replace(day=1) - timedelta(days=1)
    return Horizon(today.isoformat(), f"{previous.year:04d}-{previous.month:02d}")


def past_horizon(notice: Notice, horizon: Horizon) -> bool:
    """A notice past its horizon is never queued: one like it may have been delivered and pruned since, and
    queueing it again would send it twice (and it tells the resident nothing useful any more)."""
    if notice.kind == ReminderKind.EXPIRING_SOON:
        return notice.expires_on is not None and notice.expires_on.isoformat() < horizon.today
    return notice.period < horizon.previous_month


def retry_delay_us(attempts: int) -> int:
    """The wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, ... at most 6 hours."""
    return int(min(FIRST_RETRY_US * 2 ** max(attempts - 1, 0), MAX_RETRY_US))


def encode_body(notice: Notice) -> bytes:
    return json.dumps(notice.body(), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>" (as Stripe's webhooks): the timestamp is signed, so a receiver refuses
    old replays by checking it is recent."""
    return "sha256=" + hmac.new(secret, f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()


def sms_text(notice: Notice) -> str:
    if notice.kind == ReminderKind.EXPIRING_SOON and notice.expires_on is not None:
        return f"【碳账户】您有{notice.points}积分将于{notice.expires_on.isoformat()}过期，请及时使用。回复TD退订"
    return f"【碳账户】{notice.period}月度提醒：您当前有{notice.points}积分，请查看您的碳账户。回复TD退订"
