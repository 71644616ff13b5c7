"""The credit fast path's planning, journal entries and answers give exactly what the general definitions give: the
same fingerprints as TransferRequest.json_fingerprint, the same batch hash as the plain definition, the same postings
as built field by field and the same columns as the per-item results. Every named tuple and Posting the path builds
by position is compared with one built by keyword. No database: these are the pure parts of ADR 0102's path."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from ledger_svc.domain.credits import (
    Credit,
    PostedCredits,
    credit_columns,
    credits_by_field,
    journal_entries,
    plan_credits,
)
from ledger_svc.domain.fingerprints import metadata_json
from ledger_svc.domain.journal import JournalEntry, entries_hash
from ledger_svc.domain.lots import LotKey, Portion
from ledger_svc.domain.time import DEFAULT_VALIDITY_MONTHS, day_of, lot_expiry_us, to_us
from ledger_svc.domain.transfers import CarriedLot, ItemResult, Posting, Status, TransferRequest
from tests.ledger.ledger_support import ISSUANCE, REDEMPTION, REGION, START, account_number, plain_entries_hash

NOW_US = to_us(START)
_TRICKY_TEXTS = ["", "event-7", 'quote " back\\slash', "引用\t\n", "\x00\x1f\u2028", "\ud800 lone", "😀/</", "é" * 256]


# What a journal entry can hold (its canonical bytes are UTF-8: no lone surrogate).
_STORABLE_TEXTS = [text for text in _TRICKY_TEXTS if "\ud800" not in text]


def _random_requests(rng: random.Random, count: int, texts: list[str] = _TRICKY_TEXTS) -> list[TransferRequest]:
    metadatas = [
        (),
        (("behaviour", "transit_trip"), ("partner_id", "metro"), ("rule", "r-2026-03")),
        tuple(sorted({(rng.choice(texts) + "k", rng.choice(texts)) for _ in range(3)})),
    ]
    return [
        TransferRequest(
            f"earn-{rng.getrandbits(64):x}-{item}",
            rng.choice([ISSUANCE, "system:adjustment"]),
            account_number(rng.randint(1, 50)),
            rng.randint(1, 10**9),
            rng.choice([1, 1, 1, 7]),
            False,
            rng.choice([0, NOW_US - rng.randint(0, 10**12), NOW_US + rng.randint(0, 10**9)]),
            (),
            rng.choice([*texts, f"event-{item}"]),
            rng.randint(0, 10**6),
            rng.choice(metadatas),
        )
        for item in range(count)
    ]


def test_planned_credits_carry_each_requests_fingerprint_stored_metadata_and_lot() -> None:
    rng = random.Random(11)
    for _ in range(30):
        requests = _random_requests(rng, rng.randint(1, 60))

        credits = plan_credits(requests, REGION, DEFAULT_VALIDITY_MONTHS, NOW_US)

        assert credits is not None
        for request, credit in zip(requests, credits, strict=True):
            earned_on = day_of(request.earned_at_us or NOW_US)
            assert credit == Credit(
                transfer_id=request.transfer_id,
                debit_account=request.debit_account,
                credit_account=request.credit_account,
                amount_points=request.amount_points,
                code=request.code,
                reference=request.reference,
                co2e_grams=request.co2e_grams,
                metadata_json=metadata_json(dict(request.metadata)),
                earned_at_us=request.earned_at_us,
                fingerprint=request.json_fingerprint(),
                lot=LotKey(
                    account=request.credit_account,
                    expires_at_us=lot_expiry_us(earned_on, DEFAULT_VALIDITY_MONTHS),
                    earned_on=earned_on,
                ),
            )
            assert credit.fingerprint == request.fingerprint()
            assert type(credit) is Credit and type(credit.lot) is LotKey


def test_any_item_the_fast_path_does_not_take_sends_the_batch_down_the_general_path() -> None:
    good = TransferRequest("ok", ISSUANCE, account_number(1), 10, 1)
    wrong_luhn = account_number(2)[:-1] + str((int(account_number(2)[-1]) + 1) % 10)
    old_day_us = to_us(START - timedelta(days=800))
    odd_items = [
        good._replace(transfer_id="ok"),  # the same id twice
        good._replace(transfer_id=""),
        good._replace(transfer_id="x" * 129),
        good._replace(transfer_id="linked", linked=True),
        good._replace(transfer_id="carried", carried_lots=(CarriedLot(START.date(), NOW_US + 10**12, 10),)),
        good._replace(transfer_id="user-debit", debit_account=account_number(3)),
        good._replace(transfer_id="unknown-system", debit_account="system:nobody"),
        good._replace(transfer_id="to-system", credit_account=REDEMPTION),
        good._replace(transfer_id="other-region", credit_account=account_number(4, region="110000")),
        good._replace(transfer_id="bad-check-digit", credit_account=wrong_luhn),
        good._replace(transfer_id="not-a-number", credit_account="33000012345678X0"),
        good._replace(transfer_id="zero", amount_points=0),
        good._replace(transfer_id="bad-code", code=42),
        good._replace(transfer_id="negative-co2e", co2e_grams=-1),
        good._replace(transfer_id="long-reference", reference="r" * 257),
        good._replace(transfer_id="many-metadata", metadata=tuple((f"k{n:02d}", "v") for n in range(33))),
        good._replace(transfer_id="big-metadata", metadata=(("k", "v" * 4100),)),
        good._replace(transfer_id="future", earned_at_us=NOW_US + 86_400_000_001),
        good._replace(transfer_id="expired-lot", earned_at_us=old_day_us),
    ]
    assert plan_credits([good], REGION, DEFAULT_VALIDITY_MONTHS, NOW_US) is not None
    for odd in odd_items:
        assert plan_credits([good, odd], REGION, DEFAULT_VALIDITY_MONTHS, NOW_US) is None, odd
        assert plan_credits([odd], REGION, DEFAULT_VALIDITY_MONTHS, NOW_US) is None or odd.transfer_id == "ok"


def test_the_batch_hash_of_credits_is_the_hash_of_their_journal_entries() -> None:
    rng = random.Random(3)
    for _ in range(40):
        requests = _random_requests(rng, rng.randint(0, 40), _STORABLE_TEXTS)
        credits = plan_credits(requests, REGION, DEFAULT_VALIDITY_MONTHS, NOW_US) if requests else []
        assert credits is not None
        if rng.random() < 0.3:  # fields the planner refuses but the hash still has to handle
            credits = [c._replace(reference=rng.choice(_STORABLE_TEXTS) * 400) for c in credits]
        posted_at_us = rng.choice([NOW_US, 0, 10**17])

        entries = journal_entries(credits_by_field(credits), posted_at_us)

        assert entries == [
            JournalEntry(
                transfer_id=c.transfer_id,
                debit_account=c.debit_account,
                credit_account=c.credit_account,
                amount_points=c.amount_points,
                code=c.code,
                posted_at_us=posted_at_us,
                reference=c.reference,
                co2e_grams=c.co2e_grams,
                metadata_json=c.metadata_json,
            )
            for c in credits
        ]
        assert all(type(entry) is JournalEntry for entry in entries)
        assert entries_hash(entries) == plain_entries_hash(entries)


def test_a_new_credits_posting_is_the_posting_built_field_by_field() -> None:
    credits = plan_credits(_random_requests(random.Random(4), 5), REGION, DEFAULT_VALIDITY_MONTHS, NOW_US)
    assert credits is not None

    results = PostedCredits(credits, {}, [100, 200, 300, 400, 500], [11, 12, 13, 14, 15], NOW_US).results()

    for credit, result, balance, lot_id in zip(credits, results, [100, 200, 300, 400, 500], range(11, 16), strict=True):
        assert result == ItemResult(
            transfer_id=credit.transfer_id,
            status=Status.POSTED,
            posting=Posting(
                transfer_id=credit.transfer_id,
                debit_account=credit.debit_account,
                credit_account=credit.credit_account,
                amount_points=credit.amount_points,
                code=credit.code,
                posted_at_us=NOW_US,
                fingerprint=credit.fingerprint,
                reference=credit.reference,
                co2e_grams=credit.co2e_grams,
                metadata_json=credit.metadata_json,
                earned_at_us=credit.earned_at_us,
                debit_balance_after=None,
                credit_balance_after=balance,
                debit_lots=[],
                credit_lots=[Portion(key=credit.lot, amount_points=credit.amount_points, lot_id=lot_id)],
            ),
        )


def _posting(credit: Credit, posted_at_us: int, lot_id: int) -> Posting:
    return PostedCredits([credit], {}, [credit.amount_points], [lot_id], posted_at_us).results()[0].posting  # type: ignore[return-value]


def test_the_columns_of_new_credits_are_what_their_results_say() -> None:
    requests = _random_requests(random.Random(8), 50)
    credits = plan_credits(requests, REGION, DEFAULT_VALIDITY_MONTHS, NOW_US)
    assert credits is not None
    posted = PostedCredits(credits, {}, list(range(50)), [1000 + n for n in range(50)], NOW_US)

    columns = posted.columns()

    assert columns == credit_columns(posted.results())
    assert columns.statuses == [Status.POSTED] * 50 and columns.failures == []
    assert columns.lot_ids[:2] == ["1000", "1001"] and set(columns.posted_at_us) == {NOW_US}
    assert posted.any_posted


def test_the_columns_of_replayed_and_reused_ids_are_what_their_results_say() -> None:
    credits = plan_credits(_random_requests(random.Random(9), 6), REGION, DEFAULT_VALIDITY_MONTHS, NOW_US)
    assert credits is not None
    earlier_us = NOW_US - 5_000_000
    same_body = _posting(credits[1], earlier_us, 77)
    other_body = replace(_posting(credits[4], earlier_us, 78), fingerprint="another body")
    stored = {credits[1].transfer_id: same_body, credits[4].transfer_id: other_body}
    posted = PostedCredits(credits, stored, [5, 6, 7, 8], [11, 12, 13, 14], NOW_US)

    columns = posted.columns()

    assert columns == credit_columns(posted.results())
    assert columns.statuses[1] is Status.ALREADY_POSTED and columns.statuses[4] is Status.FAILED
    assert (columns.lot_ids[1], columns.posted_at_us[1]) == ("77", earlier_us)
    assert (columns.lot_ids[4], columns.posted_at_us[4]) == ("", 0)
    assert [failure[:2] for failure in columns.failures] == [(4, "IDEMPOTENCY_KEY_REUSED")]
    assert columns.lot_ids[0] == "11" and columns.lot_ids[5] == "14"
    nothing_new = PostedCredits(credits[1:2], {credits[1].transfer_id: same_body}, [], [], NOW_US)
    assert not nothing_new.any_posted and nothing_new.columns() == credit_columns(nothing_new.results())
