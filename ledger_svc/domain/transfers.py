"""Posting a batch of transfers: validation, idempotency by transfer id, linked chains, double entry."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import NamedTuple

from ledger_svc.domain.book import Book
from ledger_svc.domain.lots import LotKey, Portion, Refusal
from ledger_svc.domain.names import (
    MAX_ID_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_REFERENCE_LENGTH,
    VALID_CODES,
    TransferCode,
    account_problem,
    is_system_account,
)
from ledger_svc.domain.time import DEFAULT_VALIDITY_MONTHS, US_PER_DAY, day_of, lot_expiry_us

MAX_BATCH_TRANSFERS = 8000
# The validity a reader assumes for an earn the journal keeps no lot record of (ADR 0106). A constant, not the
# setting: changing CARBON_LEDGER_VALIDITY_MONTHS must not change which lot earlier earns read as filling (a ledger
# set to another validity writes its earns' records, as every ledger did before).
IMPLIED_LOT_VALIDITY_MONTHS = DEFAULT_VALIDITY_MONTHS
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
    """A named tuple, not a frozen dataclass: one per transfer of every batch, and the dataclass's __init__
    (object.__setattr__ per field) cost about four times as much. Immutable all the same."""

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
            # The common earn credit: the very bytes `fingerprint_of(body)` hashes, formatted directly.
            if metadata_body is None:
                metadata_body = fingerprint_metadata(self.metadata)
            return _blake2b_hex(
                _CREDIT_FINGERPRINT_BODY
                % (
                    _json_str(self.debit_account),
                    _json_str(self.credit_account),
                    self.amount_points,
                    self.code,
                    self.earned_at_us,
                    _json_str(self.reference),
                    self.co2e_grams,
                    metadata_body,
                )
            )
        return self.json_fingerprint()

    def json_fingerprint(self) -> str:
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


# One encoder for every fingerprint: json.dumps with options builds a new encoder per call. Same bytes as
# json.dumps(body, separators=(",", ":")).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


# The fingerprint body of a transfer without carried lots, from its JSON-encoded names and reference, its integers
# and its metadata's part: the text `fingerprint_of` writes for it. %d writes an int (an IntEnum code too) as
# f"{n:d}" does, without the format-spec call that cost 0.3 us per body.
_CREDIT_FINGERPRINT_BODY = '["transfer",%s,%s,%d,%d,%d,[],%s,%d,%s]'
# What json.dumps writes for a string (ensure_ascii, the default): the C function it calls.
_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def fingerprint_of(body: object) -> str:
    return _blake2b_hex(_COMPACT_JSON.encode(body))


def _blake2b_hex(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint_metadata(metadata: tuple[tuple[str, str], ...]) -> str:
    """The metadata's part of a fingerprint body: the same text `fingerprint_of` writes for it inside the body."""
    return _COMPACT_JSON.encode(sorted(metadata)) if metadata else "[]"


# What json.dumps(..., ensure_ascii=False) writes for a string (the same C function).
_json_text = json.encoder.encode_basestring  # type: ignore[attr-defined]


def metadata_json(metadata: Mapping[str, str]) -> str:
    """The stored text: json.dumps(dict(sorted(metadata.items())), separators=(",", ":"), ensure_ascii=False),
    written directly (a third of the time: json.dumps with options builds an encoder per call)."""
    if not metadata:
        return ""
    return "{" + ",".join([f"{_json_text(key)}:{_json_text(value)}" for key, value in sorted(metadata.items())]) + "}"


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


def implied_credit_lot(
    code: int, debit_account: str, credit_account: str, earned_at_us: int, posted_at_us: int
) -> LotKey | None:
    """The lot an EARN from a system account to a user account fills when it is fresh points of its earning day:
    the journal keeps no lot record for such a credit (ADR 0106). None for any other transfer."""
    if code != TransferCode.EARN or not is_system_account(debit_account) or is_system_account(credit_account):
        return None
    expires_at_us, earned_on = _implied_lot_dates((earned_at_us or posted_at_us) // _US_PER_HOUR)
    return LotKey(credit_account, expires_at_us, earned_on)


_US_PER_HOUR = 3_600_000_000


@functools.lru_cache(maxsize=4096)
def _implied_lot_dates(hour: int) -> tuple[int, date]:
    # CST days change on a UTC hour: one computation per hour serves a replayed batch's or a statement's earns.
    earned_on = day_of(hour * _US_PER_HOUR)
    return lot_expiry_us(earned_on, IMPLIED_LOT_VALIDITY_MONTHS), earned_on


def credit_lots_implied(posting: Posting) -> bool:
    """Whether the posting's credit side is exactly its implied lot: then no lot record is written for it."""
    if len(posting.credit_lots) != 1:
        return False
    portion = posting.credit_lots[0]
    return portion.amount_points == posting.amount_points and portion.key == implied_credit_lot(
        posting.code, posting.debit_account, posting.credit_account, posting.earned_at_us, posting.posted_at_us
    )


def check_request(request: TransferRequest, region_code: str) -> None:
    """Raises Refusal naming what is wrong with one item (nothing here needs the database)."""
    if not request.transfer_id:
        raise Refusal("MISSING_TRANSFER_ID", "transfer_id is required")
    if len(request.transfer_id) > MAX_ID_LENGTH:
        raise Refusal("INVALID_TRANSFER_ID", f"transfer_id is longer than {MAX_ID_LENGTH} characters")
    for field_name, name in (("debit_account", request.debit_account), ("credit_account", request.credit_account)):
        problem = account_problem(name, region_code)
        if problem:
            raise Refusal("INVALID_ACCOUNT", f"{field_name} {problem}")
    if request.debit_account == request.credit_account:
        raise Refusal("SAME_ACCOUNT", "debit_account and credit_account must differ")
    if request.amount_points <= 0:
        raise Refusal("INVALID_AMOUNT", f"amount_points must be positive, got {request.amount_points}")
    if request.code not in VALID_CODES:
        raise Refusal("INVALID_CODE", f"code {request.code} is not a known transfer code")
    if request.co2e_grams < 0:
        raise Refusal("INVALID_CO2E", "co2e_grams must not be negative")
    if len(request.reference) > MAX_REFERENCE_LENGTH:
        raise Refusal("INVALID_REFERENCE", f"reference is longer than {MAX_REFERENCE_LENGTH} characters")
    if len(request.metadata) > MAX_METADATA_ENTRIES or len(request.metadata_json()) > MAX_METADATA_BYTES:
        raise Refusal(
            "INVALID_METADATA", f"metadata exceeds {MAX_METADATA_ENTRIES} entries or {MAX_METADATA_BYTES} bytes"
        )
    if request.carried_lots:
        if is_system_account(request.credit_account):
            raise Refusal("INVALID_CARRIED_LOTS", "carried_lots only apply to credits to a user account")
        if any(lot.amount_points <= 0 for lot in request.carried_lots):
            raise Refusal("INVALID_CARRIED_LOTS", "every carried lot needs a positive amount_points")
        if sum(lot.amount_points for lot in request.carried_lots) != request.amount_points:
            raise Refusal("INVALID_CARRIED_LOTS", "carried_lots must sum to amount_points")


def apply_transfer(book: Book, request: TransferRequest, validity_months: int) -> Posting:
    """Moves the points in `book` (raises Refusal and leaves partial changes for the caller to roll back)."""
    now_us = book.now_us
    debit_lots: list[Portion] = []
    if is_system_account(request.debit_account):
        book.system_change(request.debit_account, -request.amount_points)
    else:
        debit_lots = book.take_lots(request.debit_account, request.amount_points)
    credit_lots: list[Portion] = []
    if is_system_account(request.credit_account):
        book.system_change(request.credit_account, request.amount_points)
    else:
        portions = _credit_portions(request, debit_lots, now_us, validity_months)
        credit_lots = book.put_lots(request.credit_account, portions, fresh=True)
    return Posting(
        transfer_id=request.transfer_id,
        debit_account=request.debit_account,
        credit_account=request.credit_account,
        amount_points=request.amount_points,
        code=request.code,
        posted_at_us=now_us,
        fingerprint=request.fingerprint(),
        reference=request.reference,
        co2e_grams=request.co2e_grams,
        metadata_json=request.metadata_json(),
        earned_at_us=request.earned_at_us,
        debit_balance_after=_balance_after(book, request.debit_account),
        credit_balance_after=_balance_after(book, request.credit_account),
        debit_lots=debit_lots,
        credit_lots=credit_lots,
    )


def _credit_portions(
    request: TransferRequest, debit_lots: list[Portion], now_us: int, validity_months: int
) -> list[Portion]:
    account = request.credit_account
    if request.carried_lots:
        return [
            Portion(LotKey(account, lot.expires_at_us, lot.earned_on), lot.amount_points)
            for lot in request.carried_lots
        ]
    if debit_lots:
        # Points moving between two user accounts keep their lots' dates: moving never renews them.
        return [Portion(LotKey(account, p.key.expires_at_us, p.key.earned_on), p.amount_points) for p in debit_lots]
    earned_at_us = request.earned_at_us or now_us
    if earned_at_us > now_us + EARNED_AT_TOLERANCE_US:
        raise Refusal("INVALID_EARNED_AT", "earned_at is in the future")
    earned_on = day_of(earned_at_us)
    return [Portion(LotKey(account, lot_expiry_us(earned_on, validity_months), earned_on), request.amount_points)]


def _balance_after(book: Book, account: str) -> int | None:
    # System accounts are updated once per batch on a shard (no per-event lock), so no running balance is kept.
    return None if is_system_account(account) else book.user(account).balance_points


def post_batch(
    book: Book,
    requests: list[TransferRequest],
    stored: Mapping[str, tuple[str, ItemResult]],
    region_code: str,
    validity_months: int,
) -> list[ItemResult]:
    """Posts items in order; a linked chain is all-or-nothing. `stored` maps ids already used to
    (fingerprint, first result). Replays with the same body return the first result as ALREADY_POSTED."""
    results: list[ItemResult] = []
    seen: dict[str, tuple[str, ItemResult]] = dict(stored)
    chain: list[int] = []
    chain_mark = book.mark()
    for index, request in enumerate(requests):
        if not chain:
            chain_mark = book.mark()
        chain.append(index)
        results.append(_post_one(book, request, seen, region_code, validity_months))
        if request.linked and index < len(requests) - 1:
            continue
        if request.linked:  # the last item is flagged: the chain never closes
            for position in chain:
                _fail(results, position, "LINKED_CHAIN_OPEN", "the last transfer of the batch is flagged linked")
            book.rollback(chain_mark)
            _forget(seen, requests, chain, stored)
        elif len(chain) > 1 and any(results[position].status is Status.FAILED for position in chain):
            book.rollback(chain_mark)
            for position in chain:
                if results[position].status is Status.POSTED:
                    _fail(results, position, "LINKED_TRANSFER_FAILED", "another transfer of its linked chain failed")
            _forget(seen, requests, chain, stored)
        chain = []
    return results


def _fail(results: list[ItemResult], position: int, reason: str, message: str) -> None:
    result = results[position]
    if result.status is not Status.ALREADY_POSTED:
        results[position] = ItemResult(result.transfer_id, Status.FAILED, reason, message)


def _forget(
    seen: dict[str, tuple[str, ItemResult]],
    requests: list[TransferRequest],
    chain: list[int],
    stored: Mapping[str, tuple[str, ItemResult]],
) -> None:
    for position in chain:
        transfer_id = requests[position].transfer_id
        if transfer_id in seen and transfer_id not in stored:
            del seen[transfer_id]


def _post_one(
    book: Book,
    request: TransferRequest,
    seen: dict[str, tuple[str, ItemResult]],
    region_code: str,
    validity_months: int,
) -> ItemResult:
    previous = seen.get(request.transfer_id)
    if previous is not None:
        fingerprint, first = previous
        if fingerprint == request.fingerprint():
            return ItemResult(request.transfer_id, Status.ALREADY_POSTED, posting=first.posting)
        return ItemResult(
            request.transfer_id,
            Status.FAILED,
            "IDEMPOTENCY_KEY_REUSED",
            f"transfer_id {request.transfer_id!r} was used before with a different body",
        )
    mark = book.mark()
    try:
        check_request(request, region_code)
        posting = apply_transfer(book, request, validity_months)
    except Refusal as refusal:
        book.rollback(mark)
        return ItemResult(request.transfer_id, Status.FAILED, refusal.reason, refusal.message)
    result = ItemResult(request.transfer_id, Status.POSTED, posting=posting)
    seen[request.transfer_id] = (posting.fingerprint, result)
    return result
