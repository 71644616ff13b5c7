"""Unit tests of the pure rules: expiry dates, FIFO, splits, linked chains, idempotency, the hash chain."""

from __future__ import annotations

import json
import random
from datetime import date

from ledger_svc.domain.book import Book
from ledger_svc.domain.journal import (
    GENESIS_HASH,
    EntryFields,
    JournalEntry,
    block_hash,
    entries_hash,
    entries_hash_of_fields,
)
from ledger_svc.domain.lots import LotKey, LotState, Portion, UserAccount, split_fifo
from ledger_svc.domain.names import account_problem
from ledger_svc.domain.posting import Status, TransferRequest, fingerprint_metadata, metadata_json, post_batch
from ledger_svc.domain.time import add_months, day_of, lot_expiry_us, start_of_day_us, to_us
from tests.ledger.ledger_support import ISSUANCE, REDEMPTION, REGION, START, account_number

A = account_number(1)
NOW_US = to_us(START)


def _account_with_lots(*lots: tuple[date, int]) -> UserAccount:
    user = UserAccount(A, sum(points for _, points in lots), 0)
    for lot_id, (earned_on, points) in enumerate(lots, start=1):
        key = LotKey(A, lot_expiry_us(earned_on, 24), earned_on)
        user.lots[key] = LotState(key, points, lot_id)
    return user


def test_points_expire_at_the_start_of_the_same_day_two_years_later_in_china_time() -> None:
    assert lot_expiry_us(date(2024, 3, 10), 24) == start_of_day_us(date(2026, 3, 10))
    assert day_of(start_of_day_us(date(2026, 3, 10))) == date(2026, 3, 10)


def test_the_earned_day_is_the_china_standard_time_day() -> None:
    hour_us = 3600 * 1_000_000
    # 2026-03-14 17:00 UTC is already 2026-03-15 01:00 in Beijing; 15:00 UTC is still 23:00 on the 14th.
    assert day_of(NOW_US - 9 * hour_us) == date(2026, 3, 15)
    assert day_of(NOW_US - 11 * hour_us) == date(2026, 3, 14)


def test_leap_day_validity_never_lengthens() -> None:
    assert add_months(date(2024, 2, 29), 24) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)


def test_spending_takes_soonest_expiring_lot_first() -> None:
    user = _account_with_lots((date(2025, 6, 1), 50), (date(2024, 12, 1), 30))
    portions = user.plan_fifo(40, NOW_US)
    assert [(portion.key.earned_on, portion.amount_points) for portion in portions] == [
        (date(2024, 12, 1), 30),
        (date(2025, 6, 1), 10),
    ]


def test_expired_lots_are_never_spendable() -> None:
    user = _account_with_lots((date(2024, 1, 1), 100), (date(2025, 1, 1), 5))
    assert user.available_points(NOW_US) == 5
    book = Book(NOW_US, {A: user})
    results = post_batch(book, [TransferRequest("t1", A, REDEMPTION, 6, 2)], {}, REGION, 24)
    assert results[0].failure_reason == "INSUFFICIENT_POINTS"


def test_split_fifo_keeps_the_soonest_expiring_for_the_commit() -> None:
    early = Portion(LotKey(A, 1, date(2024, 1, 1)), 10, 1)
    late = Portion(LotKey(A, 2, date(2024, 1, 2)), 10, 2)
    taken, rest = split_fifo([late, early], 15)
    assert [(p.lot_id, p.amount_points) for p in taken] == [(1, 10), (2, 5)]
    assert [(p.lot_id, p.amount_points) for p in rest] == [(2, 5)]


def test_a_failed_linked_chain_rolls_back_every_item() -> None:
    user = UserAccount(A, 0, 0)
    book = Book(NOW_US, {A: user})
    requests = [
        TransferRequest("t1", ISSUANCE, A, 100, 1, linked=True),
        TransferRequest("t2", A, REDEMPTION, 500, 2),
        TransferRequest("t3", ISSUANCE, A, 7, 1),
    ]
    results = post_batch(book, requests, {}, REGION, 24)
    assert [r.failure_reason for r in results] == ["LINKED_TRANSFER_FAILED", "INSUFFICIENT_POINTS", ""]
    assert user.balance_points == 7
    assert book.system_deltas[ISSUANCE] == -7


def test_an_open_chain_at_the_end_of_a_batch_fails_whole() -> None:
    book = Book(NOW_US, {A: UserAccount(A, 0, 0)})
    results = post_batch(book, [TransferRequest("t1", ISSUANCE, A, 1, 1, linked=True)], {}, REGION, 24)
    assert results[0].failure_reason == "LINKED_CHAIN_OPEN"
    assert book.accounts[A].balance_points == 0


def test_same_id_same_body_replays_and_different_body_is_refused() -> None:
    book = Book(NOW_US, {A: UserAccount(A, 0, 0)})
    requests = [
        TransferRequest("t1", ISSUANCE, A, 10, 1),
        TransferRequest("t1", ISSUANCE, A, 10, 1),
        TransferRequest("t1", ISSUANCE, A, 11, 1),
    ]
    results = post_batch(book, requests, {}, REGION, 24)
    assert [r.status for r in results] == [Status.POSTED, Status.ALREADY_POSTED, Status.FAILED]
    assert results[2].failure_reason == "IDEMPOTENCY_KEY_REUSED"
    assert book.accounts[A].balance_points == 10


def test_bad_items_fail_with_a_reason_and_change_nothing() -> None:
    book = Book(NOW_US, {A: UserAccount(A, 0, 0)})
    requests = [
        TransferRequest("", ISSUANCE, A, 10, 1),
        TransferRequest("t2", ISSUANCE, A, 0, 1),
        TransferRequest("t3", ISSUANCE, A, -5, 1),
        TransferRequest("t4", ISSUANCE, A, 5, 0),
        TransferRequest("t5", ISSUANCE, A, 5, 99),
        TransferRequest("t6", "system:bank", A, 5, 1),
        TransferRequest("t7", ISSUANCE, account_number(1, "110000"), 5, 1),
        TransferRequest("t8", ISSUANCE, "1234", 5, 1),
    ]
    results = post_batch(book, requests, {}, REGION, 24)
    assert [r.failure_reason for r in results] == [
        "MISSING_TRANSFER_ID",
        "INVALID_AMOUNT",
        "INVALID_AMOUNT",
        "INVALID_CODE",
        "INVALID_CODE",
        "INVALID_ACCOUNT",
        "INVALID_ACCOUNT",
        "INVALID_ACCOUNT",
    ]
    assert book.lot_deltas == {} or all(d.remaining_points == 0 for d in book.lot_deltas.values())


def test_account_names_must_be_this_regions_numbers_or_known_system_accounts() -> None:
    assert account_problem(A, REGION) is None
    assert account_problem("system:issuance", REGION) is None
    assert account_problem("system:nope", REGION)
    assert account_problem(account_number(3, "110000"), REGION)
    assert account_problem(A[:-1] + str((int(A[-1]) + 1) % 10), REGION)


def test_changing_any_entry_changes_the_block_hash() -> None:
    entry = JournalEntry("t1", ISSUANCE, A, 10, 1, NOW_US, "", 0, "")
    tampered = JournalEntry("t1", ISSUANCE, A, 11, 1, NOW_US, "", 0, "")
    first, count = entries_hash([entry])
    assert entries_hash([tampered])[0] != first
    assert block_hash(GENESIS_HASH, 1, first, count) != block_hash(GENESIS_HASH, 2, first, count)


_TRICKY_TEXTS = ["", "event-7", 'quote " back\\slash', "引用\t\n", "\x00\x1f\u2028", "\ud800 lone", "😀/</"]


def test_the_direct_fingerprint_of_a_plain_credit_is_the_json_one() -> None:
    for reference in _TRICKY_TEXTS:
        request = TransferRequest(f"t-{reference}", ISSUANCE, account_number(3), 515, 1, False, 1234, (), reference, 9)
        assert request.fingerprint() == request.json_fingerprint()


def test_the_direct_fingerprint_of_a_credit_with_metadata_is_the_json_one() -> None:
    for text in _TRICKY_TEXTS:
        metadata = (("rule", "r1"), (text, text), ("behaviour", text), ("rule", "r0"))
        request = TransferRequest("t", ISSUANCE, account_number(3), 515, 1, False, 1234, (), "ref", 9, metadata)
        assert request.fingerprint() == request.json_fingerprint()
        assert request.fingerprint(fingerprint_metadata(metadata)) == request.json_fingerprint()


def test_metadata_json_is_json_dumps_compact_with_sorted_keys() -> None:
    for text in _TRICKY_TEXTS:
        metadata = {"rule": "r1", text: text, "behaviour": text, "a" + text: ""}
        expected = json.dumps(dict(sorted(metadata.items())), separators=(",", ":"), ensure_ascii=False)
        assert metadata_json(metadata) == expected
    assert metadata_json({}) == ""


def test_the_batch_hash_of_field_tuples_is_the_hash_of_the_entries() -> None:
    rng = random.Random(5)
    alphabet = ["a", "0", "\t", "\x00", "\x7f", "\x80", "é", "ÿ", "引", "😀", "\u2028", '"', "\\"]

    def text(length: int) -> str:
        return "".join(rng.choice(alphabet) if rng.random() < 0.2 else "a" for _ in range(length))

    for _ in range(40):
        rows: list[EntryFields] = [
            (
                text(rng.randint(0, 40)),
                rng.choice([ISSUANCE, text(15)]),
                text(16),
                rng.randint(-(10**12), 10**12),
                rng.randint(0, 9),
                rng.randint(0, 2**62),
                text(rng.choice([0, 7, 255, 256, 4097, 70_000])),
                rng.randint(0, 10**6),
                text(rng.choice([0, 60, 4096, 5000])),
            )
            for _ in range(rng.randint(0, 20))
        ]
        assert entries_hash_of_fields(rows) == entries_hash(JournalEntry(*row) for row in rows)
