"""Helpers for ledger tests: account numbers, a movable clock, migrated engines, transfer shorthands."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, text

from ledger_svc.domain.conservation import Conservation
from ledger_svc.domain.journal import JournalEntry, canonical_bytes
from ledger_svc.domain.lots import LotKey, LotState, UserAccount
from ledger_svc.domain.time import lot_expiry_us, to_us
from ledger_svc.domain.transfers import TransferRequest
from ledger_svc.service import audit, reads
from ledger_svc.service.context import LedgerContext
from service_kit import db
from service_kit.accounts import EXPIRY_ACCOUNT, ISSUANCE_ACCOUNT, REDEMPTION_ACCOUNT, luhn_check_digit

REGION = "330000"
ISSUANCE = ISSUANCE_ACCOUNT
REDEMPTION = REDEMPTION_ACCOUNT
EXPIRY = EXPIRY_ACCOUNT
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


def plain_entries_hash(entries: Iterable[JournalEntry]) -> tuple[str, int]:
    """The definition `entries_hash` builds faster: sha256 over each entry's canonical bytes, in transfer_id order."""
    digest = hashlib.sha256()
    ordered = sorted(entries, key=lambda entry: entry.transfer_id)
    for entry in ordered:
        digest.update(canonical_bytes(entry))
    return digest.hexdigest(), len(ordered)


def account_with_lots(account: str, *lots: tuple[date, int]) -> UserAccount:
    """A locked account as the general path sees it: one lot per (earned day, points), ids from 1, 24 months valid."""
    user = UserAccount(account, sum(points for _, points in lots), 0)
    for lot_id, (earned_on, points) in enumerate(lots, start=1):
        key = LotKey(account, lot_expiry_us(earned_on, 24), earned_on)
        user.lots[key] = LotState(key, points, lot_id)
    return user


def available_points(ledger: LedgerContext, account: str) -> int:
    return reads.get_balance(ledger, account).available_points


def assert_conserved(ledger: LedgerContext) -> None:
    result = audit.check_conservation(ledger)
    assert result.balanced, result.problems
    assert result.sum_of_all_balances_points == 0
    assert_incremental_agrees(ledger, result)


def assert_incremental_agrees(ledger: LedgerContext, full: Conservation) -> None:
    """The incremental check (per-block sums, ADR 0129) answers what the full audit answered, on sound books."""
    incremental = audit.check_conservation_incremental(ledger)
    assert not incremental.full_audit
    assert dataclasses.replace(incremental, full_audit=True) == full


def assert_lots_placed(engine: Engine) -> None:
    """ADR 0137's invariants, kept under each account's lock: a lot in `lots` is no later than its account's
    moved-through day, one in `recent_lots` later; and no lot id is in both."""
    with engine.connect() as conn:
        misplaced = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM lots JOIN accounts a ON a.account = lots.account"
                "        WHERE lots.earned_on > a.lots_moved_through),"
                " (SELECT count(*) FROM recent_lots r JOIN accounts a ON a.account = r.account"
                "        WHERE r.earned_on <= a.lots_moved_through),"
                " (SELECT count(*) FROM lots JOIN recent_lots r ON r.lot_id = lots.lot_id)"
            )
        ).one()
    assert tuple(misplaced) == (0, 0, 0), "lots late in lots, early in recent_lots, in both"
