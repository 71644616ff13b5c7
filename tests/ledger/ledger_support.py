"""Helpers for ledger tests: account numbers, a movable clock, migrated engines, transfer shorthands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from ledger_svc.domain.posting import TransferRequest
from service_kit import db
from service_kit.accounts import luhn_check_digit

REGION = "330000"
ISSUANCE = "system:issuance"
REDEMPTION = "system:redemption"
EXPIRY = "system:expiry"
# 2026-03-15 10:00 China Standard Time.
START = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


def account_number(n: int, region: str = REGION) -> str:
    payload = f"{region}{n:09d}"
    return payload + luhn_check_digit(payload)


class MovableClock:
    """A clock tests move by hand (no sleeping)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def migrated_engine(url: str) -> Engine:
    engine = db.make_engine(url)
    db.migrate("ledger_svc", engine)
    return engine


def earn(
    transfer_id: str, account: str, amount: int, *, earned_at: datetime | None = None, **extra: object
) -> TransferRequest:
    from ledger_svc.domain.time import to_us

    return TransferRequest(
        transfer_id=transfer_id,
        debit_account=ISSUANCE,
        credit_account=account,
        amount_points=amount,
        code=1,
        earned_at_us=to_us(earned_at) if earned_at else 0,
        **extra,  # type: ignore[arg-type]
    )


def spend(transfer_id: str, account: str, amount: int, credit: str = REDEMPTION, **extra: object) -> TransferRequest:
    return TransferRequest(
        transfer_id=transfer_id,
        debit_account=account,
        credit_account=credit,
        amount_points=amount,
        code=2,
        **extra,  # type: ignore[arg-type]
    )
