"""The hash chain: canonical bytes of a transfer, the hash of a batch's entries, and of a block.

A block is one committed batch. Its hash covers the previous block's hash, its number and the hash of its
entries, so changing, adding or removing any entry breaks every block from there on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter

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


# A field's 4-byte big-endian length as the 4 characters that encode to it in latin-1, for lengths below 1024.
_PREFIX = [length.to_bytes(4, "big").decode("latin-1") for length in range(1024)]


def entries_hash_of_fields(rows: list[EntryFields]) -> tuple[str, int]:
    """`entries_hash` over tuples, for batches of thousands: the same bytes, as one string encoded once. An entry
    whose text is ASCII is formatted directly (latin-1 encodes ASCII and the prefix characters byte for byte, and an
    ASCII field's length is its byte count): faster than encoding and prefixing nine fields one by one."""
    prefix = _PREFIX
    parts: list[str] = []
    for row in sorted(rows, key=itemgetter(0)):
        transfer_id, debit, credit, amount, code, posted_at, reference, co2e, metadata = row
        names_ascii = transfer_id.isascii() and debit.isascii() and credit.isascii()
        if names_ascii and reference.isascii() and metadata.isascii():
            amount_text, code_text, posted_text, co2e_text = str(amount), str(code), str(posted_at), str(co2e)
            try:
                parts.append(
                    f"{prefix[len(transfer_id)]}{transfer_id}{prefix[len(debit)]}{debit}{prefix[len(credit)]}{credit}"
                    f"{prefix[len(amount_text)]}{amount_text}{prefix[len(code_text)]}{code_text}"
                    f"{prefix[len(posted_text)]}{posted_text}{prefix[len(reference)]}{reference}"
                    f"{prefix[len(co2e_text)]}{co2e_text}{prefix[len(metadata)]}{metadata}"
                )
                continue
            except IndexError:  # a field of 1024 characters or more
                pass
        parts.append(canonical_bytes(JournalEntry(*row)).decode("latin-1"))
    return hashlib.sha256("".join(parts).encode("latin-1")).hexdigest(), len(rows)
