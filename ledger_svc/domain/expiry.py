"""The expiry sweep's rule: what is left of an expired lot moves to the expiry account, one transfer per lot."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from ledger_svc.domain.lots import LotKey, Portion, UserAccount
from ledger_svc.domain.names import SystemKind, TransferCode
from ledger_svc.domain.posting import Posting, fingerprint_of


@dataclass(frozen=True)
class ExpiringLot:
    lot_id: int
    key: LotKey
    remaining_points: int
    expired_points: int  # swept from this lot before (a refund can refill an expired lot)


def expire_transfer_id(lot: ExpiringLot) -> str:
    """Deterministic per lot and sweep: a rerun finds the lot empty; a refilled lot gets a fresh id."""
    return f"expire:{lot.lot_id}:{lot.expired_points}"


def expire_lots(users: Mapping[str, UserAccount], lots: list[ExpiringLot], now_us: int) -> list[Posting]:
    """Postings that empty `lots` into system:expiry, lowering the (locked) accounts' balances."""
    postings: list[Posting] = []
    for lot in sorted(lots, key=lambda item: (item.key, item.lot_id)):
        assert lot.key.expires_at_us <= now_us, "only expired lots are swept"
        user = users[lot.key.account]
        user.balance_points -= lot.remaining_points
        assert user.balance_points >= user.held_points, "expiry took held points"
        transfer_id = expire_transfer_id(lot)
        postings.append(
            Posting(
                transfer_id=transfer_id,
                debit_account=lot.key.account,
                credit_account=SystemKind.EXPIRY,
                amount_points=lot.remaining_points,
                code=int(TransferCode.EXPIRE),
                posted_at_us=now_us,
                fingerprint=fingerprint_of(["expire", transfer_id, lot.remaining_points]),
                reference=f"lot:{lot.lot_id}",
                debit_balance_after=user.balance_points,
                debit_lots=[Portion(lot.key, lot.remaining_points, lot.lot_id)],
            )
        )
    return postings


# One swept lot as the PostgreSQL sweep reads it back: (lot_id, account, expires_at_us, earned_on, points, expired
# before). Tuples, not objects: a sweep handles millions.
SweptLot = tuple[int, str, int, date, int, int]


def expire_fingerprint(transfer_id: str, points: int) -> str:
    """`fingerprint_of(["expire", transfer_id, points])` for ids of digits and colons (nothing JSON escapes)."""
    body = f'["expire","{transfer_id}",{points}]'
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()
