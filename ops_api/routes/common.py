"""What several route modules share: page parameters, account routing with the staff member's region checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict

from ops_api.context import OpsContext
from ops_api.domain.staff import Staff
from service_kit.topology import RegionEntry

PageSize = Annotated[int, Query(ge=0, le=1000, description="0: the service's default page size")]
PageToken = Annotated[str, Query(max_length=512, description="next_page_token of the previous page")]
AccountNumber = Annotated[
    str, Path(pattern=r"^[0-9]{16}$", description="16-digit account number (region code first, Luhn check digit)")
]
RegionCode = Annotated[str, Path(pattern=r"^[0-9]{6}$", description="GB/T 2260 region code")]
Json = dict[str, Any]


def enum_name(prefix: str) -> BeforeValidator:
    """An enum value is named on input as responses name it, in full ("REWARD_CATEGORY_PRACTICAL"); the short name
    ("PRACTICAL") that earlier versions took is still read, as the same value (docs/contract/CHANGELOG.md)."""

    def full(value: object) -> object:
        if isinstance(value, str) and value and not value.startswith(prefix):
            return prefix + value
        return value

    check: Callable[[object], object] = full
    return BeforeValidator(check)


class Body(BaseModel):
    """Request bodies refuse unknown fields: a typo must not be silently ignored on a mutation."""

    model_config = ConfigDict(extra="forbid")


def account_home(context: OpsContext, staff: Staff, account_number: str) -> RegionEntry:
    """The account's home region (from its number), refused for community staff of another region."""
    region = context.regions.home(account_number)
    staff.require_region(region.region_code)
    return region


def region_for(context: OpsContext, staff: Staff, region_code: str) -> RegionEntry:
    region = context.regions.region(region_code)
    staff.require_region(region.region_code, "region_code")
    return region
