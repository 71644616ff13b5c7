"""Page sizes for every list call (AIP-158): 0 is the default, above the maximum is clamped, negative is bad input."""

from __future__ import annotations

from service_kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int, field: str = "page_size", default: int = DEFAULT_PAGE_SIZE) -> int:
    if requested < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(requested or default, MAX_PAGE_SIZE)
