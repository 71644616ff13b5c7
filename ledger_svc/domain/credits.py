"""Credit-only batches: every item moves fresh points from a system account to a user account.

Such a batch can never drive a user balance negative, so it needs no read of user lots: it is planned here as
plain tuples and written set-based (ADR 0102). Anything else goes down the general path in `posting.py`.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.names import (
    MAX_ID_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_REFERENCE_LENGTH,
    VALID_CODES,
    account_problem,
    is_system_account,
)
from ledger_svc.domain.posting import (
    EARNED_AT_TOLERANCE_US,
    ItemResult,
    Posting,
    Status,
    TransferRequest,
    fingerprint_metadata,
)
from ledger_svc.domain.time import day_of, lot_expiry_us


class Credit(NamedTuple):
    """One planned credit: the journal row's fields, the request's fingerprint and the lot it fills."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    code: int
    reference: str
    co2e_grams: int
    metadata_json: str
    earned_at_us: int
    fingerprint: str
    lot: LotKey


def plan_credits(
    requests: list[TransferRequest], region_code: str, validity_months: int, now_us: int
) -> list[Credit] | None:
    """The items as credits when every one is a well-formed, unlinked credit from a system account to a user
    account, into a lot that has not expired, with an id used once in the batch. None otherwise: the general path
    then posts the batch and names what is wrong with each item."""
    users: set[str] = set()
    ids: set[str] = set()
    days: dict[int, tuple[date, int]] = {}
    # A batch repeats a few metadata (partner, behaviour, rule): their stored text and fingerprint part once each.
    metadata_texts: dict[tuple[tuple[str, str], ...], tuple[str, str]] = {(): ("", "[]")}
    credits: list[Credit] = []
    latest_us = now_us + EARNED_AT_TOLERANCE_US
    for request in requests:
        transfer_id = request.transfer_id
        credit_account = request.credit_account
        if (
            request.linked
            or request.carried_lots
            or not transfer_id
            or len(transfer_id) > MAX_ID_LENGTH
            or transfer_id in ids
            or not is_system_account(request.debit_account)
            or request.amount_points <= 0
            or request.code not in VALID_CODES
            or request.co2e_grams < 0
            or len(request.reference) > MAX_REFERENCE_LENGTH
            or len(request.metadata) > MAX_METADATA_ENTRIES
        ):
            return None
        if credit_account not in users:
            if is_system_account(credit_account) or account_problem(credit_account, region_code) is not None:
                return None
            users.add(credit_account)
        ids.add(transfer_id)
        texts = metadata_texts.get(request.metadata)
        if texts is None:
            texts = metadata_texts[request.metadata] = (
                request.metadata_json(),
                fingerprint_metadata(request.metadata),
            )
        metadata, metadata_body = texts
        if len(metadata) > MAX_METADATA_BYTES:
            return None
        earned_at_us = request.earned_at_us or now_us
        if earned_at_us > latest_us:
            return None
        day_key = earned_at_us // 3_600_000_000  # CST days change on the hour: cache per UTC hour
        lot = days.get(day_key)
        if lot is None:
            earned_on = day_of(earned_at_us)
            lot = days[day_key] = (earned_on, lot_expiry_us(earned_on, validity_months))
        if lot[1] <= now_us:
            return None
        credits.append(
            Credit(
                transfer_id,
                request.debit_account,
                credit_account,
                request.amount_points,
                request.code,
                request.reference,
                request.co2e_grams,
                metadata,
                request.earned_at_us,
                request.fingerprint(metadata_body),
                LotKey(credit_account, lot[1], lot[0]),
            )
        )
    return credits


def credit_results(
    credits: list[Credit],
    stored: dict[str, Posting],
    balances_after: list[int],
    lot_ids: list[int],
    now_us: int,
) -> list[ItemResult]:
    """Per-item results exactly as the general path gives them: POSTED with the lot filled, or for an id used
    before ALREADY_POSTED (same body) with the first result, or IDEMPOTENCY_KEY_REUSED. `balances_after` and
    `lot_ids` hold one value per posted credit, in order."""
    results: list[ItemResult] = []
    posted = 0
    for credit in credits:
        first = stored.get(credit.transfer_id) if stored else None
        if first is not None:
            results.append(_replay(credit, first))
            continue
        # Positional, in field order: keywords made these two calls 0.45 µs slower per credit (matched by name).
        posting = Posting(
            credit.transfer_id,
            credit.debit_account,
            credit.credit_account,
            credit.amount_points,
            credit.code,
            now_us,
            credit.fingerprint,
            credit.reference,
            credit.co2e_grams,
            credit.metadata_json,
            credit.earned_at_us,
            None,  # debit_balance_after: a system account keeps no running balance
            balances_after[posted],
            [],
            [Portion(credit.lot, credit.amount_points, lot_ids[posted])],
        )
        posted += 1
        results.append(ItemResult(credit.transfer_id, Status.POSTED, "", "", posting))
    return results


def _replay(credit: Credit, first: Posting) -> ItemResult:
    if first.fingerprint == credit.fingerprint:
        return ItemResult(credit.transfer_id, Status.ALREADY_POSTED, posting=first)
    return ItemResult(
        credit.transfer_id,
        Status.FAILED,
        "IDEMPOTENCY_KEY_REUSED",
        f"transfer_id {credit.transfer_id!r} was used before with a different body",
    )
