"""Transfers: what a caller asks the ledger to post, what the ledger posted, and the answer per item."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import NamedTuple

from ledger_svc.domain.fingerprints import (
    CREDIT_FINGERPRINT_BODY,
    blake2b_hex,
    fingerprint_metadata,
    fingerprint_of,
    json_string,
    metadata_json,
)
from ledger_svc.domain.lots import Portion
from ledger_svc.domain.time import US_PER_DAY

MAX_BATCH_TRANSFERS = 8000
# A behaviour's clock may run a little ahead of ours; more than this is a wrong timestamp.
EARNED_AT_TOLERANCE_US = US_PER_DAY


class Status(Enum):
    POSTED = "POSTED"
    ALREADY_POSTED = "ALREADY_POSTED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CarriedLot:
    earned_on: date
    expires_at_us: int
    amount_points: int


class TransferRequest(NamedTuple):
    """One transfer a caller asks for; immutable. One per item of every batch, hence a named tuple
    (docs/adr/0008-per-item-values-are-named-tuples.md)."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    code: int
    linked: bool = False
    earned_at_us: int = 0  # 0: now
    carried_lots: tuple[CarriedLot, ...] = ()
    reference: str = ""
    co2e_grams: int = 0
    metadata: tuple[tuple[str, str], ...] = ()

    def fingerprint(self, metadata_body: str | None = None) -> str:
        """What "the same body" means for idempotency: every field except `linked`. A caller that meets the same
        metadata many times may pass `fingerprint_metadata(self.metadata)`, computed once."""
        if not self.carried_lots:
            # The common earn credit: the very text `json_fingerprint` hashes, formatted directly.
            if metadata_body is None:
                metadata_body = fingerprint_metadata(self.metadata)
            return blake2b_hex(
                CREDIT_FINGERPRINT_BODY
                % (
                    json_string(self.debit_account),
                    json_string(self.credit_account),
                    self.amount_points,
                    self.code,
                    self.earned_at_us,
                    json_string(self.reference),
                    self.co2e_grams,
                    metadata_body,
                )
            )
        return self.json_fingerprint()

    def json_fingerprint(self) -> str:
        """The definition of the fingerprint: the hash of the body as compact JSON."""
        body = [
            "transfer",
            self.debit_account,
            self.credit_account,
            self.amount_points,
            self.code,
            self.earned_at_us,
            [[lot.earned_on.isoformat(), lot.expires_at_us, lot.amount_points] for lot in self.carried_lots],
            self.reference,
            self.co2e_grams,
            sorted(self.metadata),
        ]
        return fingerprint_of(body)

    def metadata_json(self) -> str:
        return metadata_json(dict(self.metadata))


@dataclass
class Posting:
    """A transfer the ledger has posted (or will post when the transaction commits)."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    code: int
    posted_at_us: int
    fingerprint: str
    reference: str = ""
    co2e_grams: int = 0
    metadata_json: str = ""
    earned_at_us: int = 0
    debit_balance_after: int | None = None
    credit_balance_after: int | None = None
    debit_lots: list[Portion] = field(default_factory=list)
    credit_lots: list[Portion] = field(default_factory=list)
    refund_of: str | None = None


@dataclass
class ItemResult:
    transfer_id: str
    status: Status
    failure_reason: str = ""
    failure_message: str = ""
    posting: Posting | None = None

    @property
    def lots(self) -> list[Portion]:
        """The lots a debit took, or for a credit from a system account the lots it filled."""
        if self.posting is None:
            return []
        return self.posting.debit_lots or self.posting.credit_lots


def reused_id(transfer_id: str) -> ItemResult:
    """The answer to an item whose id was used before with another body."""
    return ItemResult(
        transfer_id,
        Status.FAILED,
        "IDEMPOTENCY_KEY_REUSED",
        f"transfer_id {transfer_id!r} was used before with a different body",
    )
