"""The hash chain: canonical bytes of a transfer, the hash of a batch's entries, and of a block.

A block is one committed batch. Its hash covers the previous block's hash, its number and the hash of its
entries, so changing, adding or removing any entry breaks every block from there on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class JournalEntry:
    """The audited fields of one posted transfer."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    code: int
    posted_at_us: int
    reference: str
    co2e_grams: int
    metadata_json: str


def canonical_bytes(entry: JournalEntry) -> bytes:
    # Length-prefixed fields: no separator inside a value can make two entries encode alike.
    parts = (
        entry.transfer_id,
        entry.debit_account,
        entry.credit_account,
        str(entry.amount_points),
        str(entry.code),
        str(entry.posted_at_us),
        entry.reference,
        str(entry.co2e_grams),
        entry.metadata_json,
    )
    return b"".join(len(raw).to_bytes(4, "big") + raw for raw in (part.encode() for part in parts))


def entries_hash(entries: Iterable[JournalEntry]) -> tuple[str, int]:
    """Hash and count of a batch's entries, taken in transfer_id order (independent of insert order)."""
    digest = hashlib.sha256()
    count = 0
    for entry in sorted(entries, key=lambda item: item.transfer_id):
        digest.update(canonical_bytes(entry))
        count += 1
    return digest.hexdigest(), count


def block_hash(previous_hash: str, block_no: int, batch_entries_hash: str, entries_count: int) -> str:
    return hashlib.sha256(f"{previous_hash}|{block_no}|{batch_entries_hash}|{entries_count}".encode()).hexdigest()


# The audited fields as a plain tuple, in canonical order (the fast path builds these instead of entries).
EntryFields = tuple[str, str, str, int, int, int, str, int, str]


def entries_hash_of_fields(rows: list[EntryFields]) -> tuple[str, int]:
    """`entries_hash` over tuples: the same bytes into one buffer, for batches of thousands."""
    buffer = bytearray()
    for row in sorted(rows, key=lambda fields: fields[0]):
        for part in (row[0], row[1], row[2], str(row[3]), str(row[4]), str(row[5]), row[6], str(row[7]), row[8]):
            raw = part.encode()
            buffer += len(raw).to_bytes(4, "big")
            buffer += raw
    return hashlib.sha256(buffer).hexdigest(), len(rows)
