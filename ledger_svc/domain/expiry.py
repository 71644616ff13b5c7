"""The expiry sweep's rule: what is left of an expired lot moves to the expiry account, one transfer per lot.

Both sweeps, the general one and PostgreSQL's set-based one (ADR 0102), make their transfers here: the same ids,
fingerprints and balances-after, lot by lot in (lot key, lot id) order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from operator import attrgetter, itemgetter
from typing import NamedTuple

from ledger_svc.domain.fingerprints import blake2b_hex
from ledger_svc.domain.implied_lots import EXPIRED_LOT_REFERENCE_PREFIX
from ledger_svc.domain.journal import LENGTH_PREFIX, JournalEntry, entries_hash
from ledger_svc.domain.lots import LotKey, Portion, UserAccount
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.transfers import Posting
from service_kit.accounts import EXPIRY_ACCOUNT

_EXPIRE = int(TransferCode.EXPIRE)


class ExpiryCandidate(NamedTuple):
    """A lot the sweep found with points left after its expiry, before its account is locked."""

    lot_id: int
    account: str
    expires_at_us: int
    points: int = 0  # what it held when found (the set-based sweep takes this off the account first, ADR 0131)


class ExpiringLot(NamedTuple):
    """An expired lot with points left, read under its account's lock. A sweep handles millions: named tuples
    (docs/adr/0008-per-item-values-are-named-tuples.md)."""

    lot_id: int
    account: str
    expires_at_us: int
    earned_on: date
    points: int  # left in the lot: what expires now
    expired_before: int  # swept from this lot before (a refund can refill an expired lot)

    @property
    def key(self) -> LotKey:
        return LotKey(self.account, self.expires_at_us, self.earned_on)


class ExpiryTransfer(NamedTuple):
    """The transfer that empties one expired lot into the expiry account."""

    lot: ExpiringLot
    transfer_id: str
    reference: str
    fingerprint: str
    debit_balance_after: int


# (account, expires_at_us, earned_on, lot_id) by position: an ExpiringLot's fields read through their names cost a
# Python call each, and the set-based sweep sorts 10,000 lots a batch.
_sweep_order = itemgetter(1, 2, 3, 0)


def expiry_transfers(
    lots: Iterable[ExpiringLot], users: Mapping[str, UserAccount], now_us: int
) -> list[ExpiryTransfer]:
    """One transfer per lot, in lot key order then lot id (so each gets the same balance-after on every path); the
    (locked) accounts' balances fall by what their lots lose. The set-based sweep makes 10,000 a batch: fields are
    read by position."""
    transfers: list[ExpiryTransfer] = []
    append = transfers.append
    for lot in sorted(lots, key=_sweep_order):
        lot_id, account, expires_at_us, _, points, expired_before = lot
        assert expires_at_us <= now_us, "only expired lots are swept"
        user = users[account]
        balance = user.balance_points = user.balance_points - points
        assert balance >= user.held_points, "expiry took held points"
        # Deterministic per lot and sweep: a rerun finds the lot empty; a refilled lot gets a fresh id.
        transfer_id = f"expire:{lot_id}:{expired_before}"
        fingerprint = expire_fingerprint(transfer_id, points)
        append(ExpiryTransfer(lot, transfer_id, f"{EXPIRED_LOT_REFERENCE_PREFIX}{lot_id}", fingerprint, balance))
    return transfers


def expire_fingerprint(transfer_id: str, points: int) -> str:
    """`fingerprint_of(["expire", transfer_id, points])`, formatted directly: an expiry id is digits and colons,
    nothing JSON escapes (a test compares the two)."""
    return blake2b_hex(f'["expire","{transfer_id}",{points}]')


def expiry_entry(transfer: ExpiryTransfer, now_us: int) -> JournalEntry:
    """The transfer's audited fields (what the set-based sweep hashes and writes)."""
    lot = transfer.lot
    return JournalEntry(
        transfer_id=transfer.transfer_id,
        debit_account=lot.account,
        credit_account=EXPIRY_ACCOUNT,
        amount_points=lot.points,
        code=_EXPIRE,
        posted_at_us=now_us,
        reference=transfer.reference,
        co2e_grams=0,
        metadata_json="",
    )


_by_transfer_id = attrgetter("transfer_id")


def expiry_entries_hash(transfers: list[ExpiryTransfer], now_us: int) -> tuple[str, int]:
    """`entries_hash` of the transfers' entries (`expiry_entry`), formatted directly: the fields every expiry shares
    (credit account, code, instant, no CO2e, no metadata) once, no entry built per lot, the same bytes (a test compares
    the two). The set-based sweep hashes 10,000 a batch. An account name that is not ASCII (its length in bytes is
    not its length in characters) goes the general way."""
    if not all(transfer.lot.account.isascii() for transfer in transfers):
        return entries_hash([expiry_entry(transfer, now_us) for transfer in transfers])
    prefix = LENGTH_PREFIX
    credit = f"{prefix[len(EXPIRY_ACCOUNT)]}{EXPIRY_ACCOUNT}"
    code, posted = str(_EXPIRE), str(now_us)
    code_and_instant = f"{prefix[len(code)]}{code}{prefix[len(posted)]}{posted}"
    no_co2e_no_metadata = f"{prefix[1]}0{prefix[0]}"
    parts: list[str] = []
    for transfer in sorted(transfers, key=_by_transfer_id):
        transfer_id, reference, account = transfer.transfer_id, transfer.reference, transfer.lot.account
        points = str(transfer.lot.points)
        parts.append(
            f"{prefix[len(transfer_id)]}{transfer_id}{prefix[len(account)]}{account}{credit}"
            f"{prefix[len(points)]}{points}{code_and_instant}{prefix[len(reference)]}{reference}{no_co2e_no_metadata}"
        )
    return hashlib.sha256("".join(parts).encode("latin-1")).hexdigest(), len(parts)


def expiry_posting(transfer: ExpiryTransfer, now_us: int) -> Posting:
    """The transfer as the general sweep posts it: its entry, and the one lot it empties."""
    lot = transfer.lot
    return Posting(
        **expiry_entry(transfer, now_us)._asdict(),
        fingerprint=transfer.fingerprint,
        debit_balance_after=transfer.debit_balance_after,
        debit_lots=[Portion(lot.key, lot.points, lot.lot_id)],
    )


@dataclass(frozen=True)
class ExpiryOutcome:
    """What a sweep (or one batch of it) did; `done` when no expired lot with points is left."""

    lots_expired: int
    points_expired: int
    done: bool = True
    # Where a sweep that stopped after its batches would go on (None: from the start of a run, the lots queued again
    # and then the watermark, ADR 0133). A run going on in steps passes it to the next step.
    resume_after: ExpiryCandidate | None = None

    def __add__(self, other: ExpiryOutcome) -> ExpiryOutcome:
        """Both sweeps' work; done, and to be resumed, as the later one says."""
        return ExpiryOutcome(
            lots_expired=self.lots_expired + other.lots_expired,
            points_expired=self.points_expired + other.points_expired,
            done=other.done,
            resume_after=other.resume_after,
        )
