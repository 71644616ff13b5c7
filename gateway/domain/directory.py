"""The national directory: one person's accounts across regions, found by the national person key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DirectoryAccount:
    """One of the person's accounts with its balance, or the reason its region could not tell (error_reason)."""

    account_number: str
    region_code: str
    available_points: int = 0
    held_points: int = 0
    error_reason: str = ""
