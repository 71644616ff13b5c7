"""The hash chain: canonical bytes of a transfer, the hash of a batch's entries, and of a block.

A block is one committed batch. Its hash covers the previous block's hash, its number and the hash of its
entries, so changing, adding or removing any entry breaks every block from there on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

GENESIS_HASH = "0" * 64


class JournalEntry(NamedTuple):
    """The audited fields of one posted transfer, in canonical order. One per transfer of every batch, hence a named
    tuple (docs/adr/0008-per-item-values-are-named-tuples.md)."""

    transfer_id: str
    debit_account: str
    credit_account: str
    amount_points: int
    code: int
    posted_at_us: int
    reference: str
    co2e_grams: int
    metadata_json: str


_ENTRY_FIELDS = attrgetter(*JournalEntry._fields)


def entry_of(source: object) -> JournalEntry:
    """The audited fields of anything that names them alike: a Posting, a row of the transfers table."""
    return JournalEntry._make(_ENTRY_FIELDS(source))


def canonical_bytes(entry: JournalEntry) -> bytes:
    """The entry's fields as UTF-8, each prefixed by its 4-byte big-endian length: no separator inside a value can
    make two entries encode alike."""
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


# A field's 4-byte big-endian length as the 4 characters that encode to it in latin-1, for lengths below 1024.
LENGTH_PREFIX = [length.to_bytes(4, "big").decode("latin-1") for length in range(1024)]
_PREFIX = LENGTH_PREFIX
_by_transfer_id = attrgetter("transfer_id")


def entries_hash(entries: Iterable[JournalEntry]) -> tuple[str, int]:
    """Hash and count of a batch's entries: the sha256 of their canonical bytes in transfer_id order (independent of
    insert order). Batches hold thousands of entries, so the bytes are built as one string, encoded once: an entry
    whose text is ASCII is formatted directly (latin-1 encodes ASCII and the prefix characters byte for byte, and an
    ASCII field's length is its byte count); any other entry is `canonical_bytes`, decoded as latin-1."""
    prefix = _PREFIX
    parts: list[str] = []
    ordered = sorted(entries, key=_by_transfer_id)
    for entry in ordered:
        transfer_id, debit, credit, amount, code, posted_at, reference, co2e, metadata = entry
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
        parts.append(canonical_bytes(entry).decode("latin-1"))
    return hashlib.sha256("".join(parts).encode("latin-1")).hexdigest(), len(ordered)


def block_hash(previous_hash: str, block_no: int, batch_entries_hash: str, entries_count: int) -> str:
    return hashlib.sha256(f"{previous_hash}|{block_no}|{batch_entries_hash}|{entries_count}".encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    """What recomputing the chain found: every block sound, or the first broken one and why."""

    ok: bool
    blocks_checked: int
    entries_checked: int
    first_broken_block: int = 0
    problem: str = ""
