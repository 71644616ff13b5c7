"""The region registry: which regions exist and where their services listen; routes account numbers home.

Loaded from the registry file (written by `carbon up` or shipped as configuration; the gateway and the ops API name
it in their settings), so adding a region is configuration, not code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from service_kit.accounts import is_account_number, region_of
from service_kit.errors import FailedPrecondition, InvalidArgument, NotFound
from service_kit.topology import RegionEntry, Registry


@dataclass(frozen=True)
class RegionRegistry:
    regions: dict[str, RegionEntry]

    @classmethod
    def from_entries(cls, entries: Iterable[RegionEntry]) -> RegionRegistry:
        regions: dict[str, RegionEntry] = {}
        for entry in entries:
            if len(entry.region_code) != 6 or not entry.region_code.isdigit():
                raise ValueError(f"registry: region code must be 6 digits, got {entry.region_code!r}")
            if entry.region_code in regions:
                raise ValueError(f"registry: region {entry.region_code} is listed twice")
            regions[entry.region_code] = entry
        return cls(regions)

    @classmethod
    def load(cls, path: Path) -> RegionRegistry:
        try:
            registry = Registry.load(path)
        except FileNotFoundError:
            raise ValueError(f"registry: no file at {path}") from None
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"registry: {path} is malformed: {error}") from None
        return cls.from_entries(registry.regions)

    def sorted_codes(self) -> list[str]:
        return sorted(self.regions)

    def region(self, region_code: str) -> RegionEntry:
        try:
            return self.regions[region_code]
        except KeyError:
            raise NotFound(
                "UNKNOWN_REGION", f"region {region_code} is not registered", {"region": region_code}
            ) from None

    def route(self, account_number: str, field: str = "account_number") -> RegionEntry:
        """The home region of an account, from its number alone (no lookup)."""
        if not is_account_number(account_number):
            raise InvalidArgument(field, "must be a 16-digit account number with a valid check digit")
        code = region_of(account_number)
        if code not in self.regions:
            raise FailedPrecondition(
                "REGION_NOT_FEDERATED", f"region {code} of this account is not federated here", {"region": code}
            )
        return self.regions[code]
