"""The hash chain: any changed entry changes its block's hash; the batch hash is the plain definition's."""

from __future__ import annotations

import random

from ledger_svc.domain.journal import GENESIS_HASH, JournalEntry, block_hash, canonical_bytes, entries_hash, entry_of
from ledger_svc.domain.time import to_us
from ledger_svc.domain.transfers import Posting
from tests.ledger.ledger_support import ISSUANCE, START, account_number, plain_entries_hash

A = account_number(1)
NOW_US = to_us(START)


def test_changing_any_entry_changes_the_block_hash() -> None:
    entry = JournalEntry("t1", ISSUANCE, A, 10, 1, NOW_US, "", 0, "")
    tampered = JournalEntry("t1", ISSUANCE, A, 11, 1, NOW_US, "", 0, "")
    first, count = entries_hash([entry])
    assert entries_hash([tampered])[0] != first
    assert block_hash(GENESIS_HASH, 1, first, count) != block_hash(GENESIS_HASH, 2, first, count)


def test_the_batch_hash_is_the_plain_definitions_for_any_text() -> None:
    rng = random.Random(5)
    alphabet = ["a", "0", "\t", "\x00", "\x7f", "\x80", "é", "ÿ", "引", "😀", "\u2028", '"', "\\"]

    def text(length: int) -> str:
        return "".join(rng.choice(alphabet) if rng.random() < 0.2 else "a" for _ in range(length))

    for _ in range(40):
        entries = [
            JournalEntry(
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
        assert entries_hash(entries) == plain_entries_hash(entries)


def test_an_entry_is_the_audited_fields_of_its_posting_in_canonical_order() -> None:
    posting = Posting("t1", ISSUANCE, A, 10, 1, NOW_US, "fingerprint", "event-7", 515, '{"k":"v"}', earned_at_us=5)

    entry = entry_of(posting)

    assert entry == JournalEntry(
        transfer_id="t1",
        debit_account=ISSUANCE,
        credit_account=A,
        amount_points=10,
        code=1,
        posted_at_us=NOW_US,
        reference="event-7",
        co2e_grams=515,
        metadata_json='{"k":"v"}',
    )
    # Canonical order: each field length-prefixed, in JournalEntry's order.
    assert (
        canonical_bytes(entry)
        == b"".join(
            len(raw).to_bytes(4, "big") + raw
            for raw in (b"t1", ISSUANCE.encode(), A.encode(), b"10", b"1", str(NOW_US).encode(), b"event-7", b"515")
        )
        + (9).to_bytes(4, "big")
        + b'{"k":"v"}'
    )
