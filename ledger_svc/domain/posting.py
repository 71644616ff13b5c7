"""Posting a batch on a locked Book, the general path: validation, idempotency by transfer id, linked chains,
double entry. Any batch on any database can take it; PostgreSQL's set-based paths must answer exactly as it does."""

from __future__ import annotations

from collections.abc import Mapping

from ledger_svc.domain.book import Book
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.names import (
    MAX_ID_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_REFERENCE_LENGTH,
    VALID_CODES,
    account_problem,
)
from ledger_svc.domain.refusal import Refusal
from ledger_svc.domain.time import day_of, lot_expiry_us
from ledger_svc.domain.transfers import EARNED_AT_TOLERANCE_US, ItemResult, Posting, Status, TransferRequest, reused_id
from service_kit.accounts import is_system_account


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
        return reused_id(request.transfer_id)
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
