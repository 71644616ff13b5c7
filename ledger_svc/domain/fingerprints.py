"""Fingerprints of request bodies (what "the same body" means for an idempotency key) and the stored metadata text.

A fingerprint is the BLAKE2b-128 of the body as compact JSON (`fingerprint_of`). The credit path formats the same
text directly for the common shape (no carried lots); tests compare it with the JSON encoder's for tricky text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

# One encoder for every fingerprint: json.dumps with options builds a new encoder per call. Same text as
# json.dumps(body, separators=(",", ":")).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))

# The body of a transfer without carried lots, from its JSON-encoded names and reference, its integers and its
# metadata's part: the text `fingerprint_of` writes for it. %d writes an int (an IntEnum code too) as JSON does,
# without a format-spec call.
CREDIT_FINGERPRINT_BODY = '["transfer",%s,%s,%d,%d,%d,[],%s,%d,%s]'
# What json.dumps writes for a string (ensure_ascii, the default): the C function it calls.
json_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
# What json.dumps(..., ensure_ascii=False) writes for a string (the same C function, without escaping non-ASCII).
_json_text = json.encoder.encode_basestring  # type: ignore[attr-defined]


def fingerprint_of(body: object) -> str:
    return blake2b_hex(_COMPACT_JSON.encode(body))


def blake2b_hex(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint_metadata(metadata: tuple[tuple[str, str], ...]) -> str:
    """The metadata's part of a fingerprint body: the same text `fingerprint_of` writes for it inside the body."""
    return _COMPACT_JSON.encode(sorted(metadata)) if metadata else "[]"


def metadata_json(metadata: Mapping[str, str]) -> str:
    """The stored text: json.dumps(dict(sorted(metadata.items())), separators=(",", ":"), ensure_ascii=False),
    written directly with the encoder's string function (json.dumps with options builds an encoder per call)."""
    if not metadata:
        return ""
    return "{" + ",".join([f"{_json_text(key)}:{_json_text(value)}" for key, value in sorted(metadata.items())]) + "}"
