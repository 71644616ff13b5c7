"""Paging for every list call (AIP-158): page sizes (0 is the default, above the maximum is clamped, negative is bad
input) and one page-token format for every List method of every service.

A token is opaque to callers: base64url of a JSON array ["p1", <kind>, <cursor values>...], where the kind names the
list it continues, so a token of another list, a token of another version, or any string this code did not make is
refused with INVALID_ARGUMENT INVALID_PAGE_TOKEN (naming page_token) before any database work, never silently read
as the first page. The cursor values are the list's own (an offset, the last id, a position); a service still checks
their range.
"""

from __future__ import annotations

import base64
import binascii
import json

from service_kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TOKEN_VERSION = "p1"
# Longer than any token this module makes (a few cursor values), short enough to refuse garbage before decoding it.
MAX_TOKEN_CHARS = 512
MAX_CURSOR_TEXT = 128
MAX_CURSOR_INT = 2**63 - 1

Cursor = str | int


def page_size(requested: int, field: str = "page_size", default: int = DEFAULT_PAGE_SIZE) -> int:
    if requested < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(requested or default, MAX_PAGE_SIZE)


def encode_token(kind: str, *cursor: Cursor) -> str:
    """The token of the page that starts after `cursor` in the list `kind`."""
    payload = json.dumps([TOKEN_VERSION, kind, *cursor], separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, kind: str, *shape: type[Cursor]) -> list[Cursor] | None:
    """The cursor values of a token of the list `kind`, of the types in `shape` (64-bit ints, strings of 1-128
    characters without NUL); None for "" (the first page); INVALID_PAGE_TOKEN for anything else."""
    if not token:
        return None
    values = _payload(token)
    if values[:2] != [TOKEN_VERSION, kind] or len(values) != 2 + len(shape):
        raise _refused("is not a page token of this list")
    cursor: list[Cursor] = values[2:]
    for value, expected in zip(cursor, shape, strict=True):
        if not _fits(value, expected):
            raise _refused("is not a page token of this list")
    return cursor


def decode_int(token: str, kind: str, maximum: int = MAX_CURSOR_INT) -> int | None:
    """The one integer cursor (e.g. an offset) of a token of `kind`, at most `maximum`; None for the first page."""
    cursor = decode_token(token, kind, int)
    if cursor is None:
        return None
    value = int(cursor[0])
    if not 0 <= value <= maximum:
        raise _refused("is beyond the end of this list")
    return value


def decode_text(token: str, kind: str) -> str | None:
    """The one text cursor (e.g. the last id of the previous page) of a token of `kind`; None for the first page."""
    cursor = decode_token(token, kind, str)
    return None if cursor is None else str(cursor[0])


def _payload(token: str) -> list[Cursor]:
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise _refused("is not a page token this service returned")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _refused("is not a page token this service returned") from None
    if not isinstance(decoded, list):
        raise _refused("is not a page token this service returned")
    return decoded


def _fits(value: object, expected: type[Cursor]) -> bool:
    if expected is int:
        return type(value) is int and -MAX_CURSOR_INT <= value <= MAX_CURSOR_INT
    return type(value) is str and 0 < len(value) <= MAX_CURSOR_TEXT and "\x00" not in value


def _refused(why: str) -> InvalidArgument:
    return InvalidArgument("page_token", why, reason="INVALID_PAGE_TOKEN")
