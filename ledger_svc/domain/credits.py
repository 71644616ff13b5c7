"""Credit-only batches: every item moves fresh points from a system account to a user account.

Such a batch can never drive a user balance negative, so it needs no read of user lots: it is planned here as
named tuples and written set-based on PostgreSQL (ADR 0102). Anything else goes down the general path in
`posting.py`; the answers here are exactly the ones it gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import repeat
from typing import Any, NamedTuple

from ledger_svc.domain.fingerprints import fingerprint_metadata
from ledger_svc.domain.journal import JournalEntry
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.names import (
    MAX_ID_LENGTH,
    MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_REFERENCE_LENGTH,
    VALID_CODES,
    is_user_account,
)
from ledger_svc.domain.time import US_PER_HOUR, LotDates, lot_dates_of_hour
from ledger_svc.domain.transfers import EARNED_AT_TOLERANCE_US, ItemResult, Posting, Status, TransferRequest, reused_id
from service_kit.accounts import is_system_account


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


# Named tuples built per credit go through tuple.__new__ with their fields in order, not the class's generated
# __new__ (docs/adr/0008-per-item-values-are-named-tuples.md); tests pin each field order against keywords.
_new_tuple = tuple.__new__
_new_journal_entry: Callable[[tuple[Any, ...]], JournalEntry] = partial(tuple.__new__, JournalEntry)
# Metadata's stored text and fingerprint part, "" and "[]" when there is none.
_MetadataTexts = dict[tuple[tuple[str, str], ...], tuple[str, str] | None]


def plan_credits(
    requests: list[TransferRequest], region_code: str, validity_months: int, now_us: int
) -> list[Credit] | None:
    """The items as credits when every one is a well-formed, unlinked credit from a system account to a user
    account, into a lot that has not expired, with an id used once in the batch. None otherwise: the general path
    then posts the batch and names what is wrong with each item."""
    if not requests:
        return []
    columns = _by_field(requests, TransferRequest._fields)
    if any(columns["linked"]) or any(columns["carried_lots"]) or not _names_fit_credits(columns, region_code):
        return None
    lots_by_hour: dict[int, LotDates] = {}
    # A batch repeats a few metadata (partner, behaviour, rule), and a columnar request shares one tuple per group:
    # each is measured and formatted once, and consecutive items with the very same tuple skip even the look-up.
    texts_by_metadata: _MetadataTexts = {(): ("", "[]")}
    last_metadata: tuple[tuple[str, str], ...] | None = None
    metadata_text = metadata_body = ""
    credits: list[Credit] = []
    append, new = credits.append, _new_tuple
    latest_us = now_us + EARNED_AT_TOLERANCE_US
    items = _credit_fields(requests, columns)
    for request, transfer_id, debit, account, points, code, earned_at_us, reference, grams, metadata in items:
        if not transfer_id or len(transfer_id) > MAX_ID_LENGTH or points <= 0 or code not in VALID_CODES:
            return None
        if grams < 0 or len(reference) > MAX_REFERENCE_LENGTH:
            return None
        if metadata is not last_metadata:
            texts = _metadata_texts(request, texts_by_metadata)
            if texts is None:
                return None
            (metadata_text, metadata_body), last_metadata = texts, metadata
        at_us = earned_at_us or now_us
        if at_us > latest_us:
            return None
        hour = at_us // US_PER_HOUR
        dates = lots_by_hour.get(hour) or _unexpired_lot_dates(hour, validity_months, now_us, lots_by_hour)
        if dates is None:
            return None
        lot = new(LotKey, (account, dates.expires_at_us, dates.earned_on))
        fingerprint = request.fingerprint(metadata_body)
        row = (  # Credit's fields, in order
            transfer_id,
            debit,
            account,
            points,
            code,
            reference,
            grams,
            metadata_text,
            earned_at_us,
            fingerprint,
            lot,
        )
        append(new(Credit, row))
    return credits


def _by_field(rows: Sequence[tuple[Any, ...]], fields: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """Named tuples of one type field by field: each column named by its field (zip(*rows) transposes them in C, and
    a loop over zipped columns reads no attribute per row)."""
    if not rows:
        return {name: () for name in fields}
    return dict(zip(fields, zip(*rows, strict=True), strict=True))


def credits_by_field(credits: list[Credit]) -> dict[str, tuple[Any, ...]]:
    """The credits as one column per Credit field, by name."""
    return _by_field(credits, Credit._fields)


def _credit_fields(requests: list[TransferRequest], columns: dict[str, tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Per request: the request, and the fields a credit takes from it or checks, from their named columns."""
    return zip(
        requests,
        columns["transfer_id"],
        columns["debit_account"],
        columns["credit_account"],
        columns["amount_points"],
        columns["code"],
        columns["earned_at_us"],
        columns["reference"],
        columns["co2e_grams"],
        columns["metadata"],
        strict=True,
    )


def _names_fit_credits(columns: dict[str, tuple[Any, ...]], region_code: str) -> bool:
    """Whether each id is used once, every debit is a system account and every credit this ledger's user account
    (each distinct name checked once)."""
    if len(set(columns["transfer_id"])) != len(columns["transfer_id"]):
        return False
    if not all(map(is_system_account, set(columns["debit_account"]))):
        return False
    return all(is_user_account(account, region_code) for account in set(columns["credit_account"]))


def _metadata_texts(request: TransferRequest, known: _MetadataTexts) -> tuple[str, str] | None:
    """The request's metadata as stored text and fingerprint part, or None when it is too large to post."""
    metadata = request.metadata
    if metadata not in known:
        text = request.metadata_json()
        fits = len(metadata) <= MAX_METADATA_ENTRIES and len(text) <= MAX_METADATA_BYTES
        known[metadata] = (text, fingerprint_metadata(metadata)) if fits else None
    return known[metadata]


def _unexpired_lot_dates(hour: int, validity_months: int, now_us: int, known: dict[int, LotDates]) -> LotDates | None:
    """The dates of the lot an hour's credits fill, remembered in `known`; None when that lot has expired already."""
    dates = lot_dates_of_hour(hour, validity_months)
    if dates.expires_at_us <= now_us:
        return None
    known[hour] = dates
    return dates


def journal_entries(columns: dict[str, tuple[Any, ...]], posted_at_us: int) -> list[JournalEntry]:
    """The audited fields of credits (`credits_by_field`), posted at `posted_at_us`, for the batch hash."""
    rows = zip(
        columns["transfer_id"],
        columns["debit_account"],
        columns["credit_account"],
        columns["amount_points"],
        columns["code"],
        repeat(posted_at_us),
        columns["reference"],
        columns["co2e_grams"],
        columns["metadata_json"],
    )
    return list(map(_new_journal_entry, rows))


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
        # Positional, in field order (a test pins it against keywords): one Posting per credit of the batch.
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
    return reused_id(credit.transfer_id)


class CreditFailure(NamedTuple):
    position: int  # of the item in the batch
    reason: str
    message: str


class CreditColumns(NamedTuple):
    """PostCredits' answer: per item its status, the id of the lot it filled ("" when it failed) and when it was
    posted (0 when it failed), and the failures with their positions. Exactly what the items' `ItemResult`s say
    (`credit_columns`), which is what PostTransfers answers."""

    statuses: list[Status]
    lot_ids: list[str]
    posted_at_us: list[int]
    failures: list[CreditFailure]


def credit_columns(results: list[ItemResult]) -> CreditColumns:
    return CreditColumns(
        statuses=[result.status for result in results],
        lot_ids=[_credit_lot_id(result.posting) for result in results],
        posted_at_us=[result.posting.posted_at_us if result.posting else 0 for result in results],
        failures=[
            CreditFailure(index, result.failure_reason, result.failure_message)
            for index, result in enumerate(results)
            if result.status is Status.FAILED
        ],
    )


def _credit_lot_id(posting: Posting | None) -> str:
    if posting is None or not posting.credit_lots:
        return ""
    return str(posting.credit_lots[0].lot_id or "")


class PostedCredits(NamedTuple):
    """A credit batch the set-based path posted: the planned credits, the first postings of the ids used before, and
    for each credit posted now (those not in `stored`, in order) the account's balance after it and its lot's id."""

    credits: list[Credit]
    stored: dict[str, Posting]
    balances_after: list[int]
    lot_ids: list[int]
    posted_at_us: int

    @property
    def any_posted(self) -> bool:
        return bool(self.lot_ids)

    def results(self) -> list[ItemResult]:
        return credit_results(self.credits, self.stored, self.balances_after, self.lot_ids, self.posted_at_us)

    def columns(self) -> CreditColumns:
        """`credit_columns(self.results())`, without a Posting and an ItemResult per credit when every one is new
        (lot ids come from a sequence, never 0)."""
        if self.stored:
            return credit_columns(self.results())
        count = len(self.credits)
        return CreditColumns([Status.POSTED] * count, list(map(str, self.lot_ids)), [self.posted_at_us] * count, [])
