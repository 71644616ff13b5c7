"""Refusal: why the ledger will not post an item, as a machine-readable reason and a message."""

from __future__ import annotations


class Refusal(Exception):
    """An item the ledger will not post (becomes a FAILED item of a batch, or an error of a single-item call)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
