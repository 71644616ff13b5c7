"""Incentives' own settings: the CARBON_* variables the kit's Settings does not know, read once at start."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from service_kit.settings import ServiceSettings, WholeNumber

SERVICE = "incentives_svc"


class IncentivesSettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    # Where this region's ingest, identity and ledger listen ("": calls fail UNAVAILABLE, DEPENDENCY_NOT_CONFIGURED).
    ingest_address: str = Field(default="", validation_alias="CARBON_INGEST_ADDRESS")
    identity_address: str = Field(default="", validation_alias="CARBON_IDENTITY_ADDRESS")
    ledger_address: str = Field(default="", validation_alias="CARBON_LEDGER_ADDRESS")
    # Every call to another service gets this deadline.
    rpc_deadline_ms: WholeNumber = Field(default=5_000, validation_alias="CARBON_INCENTIVES_RPC_DEADLINE_MS", ge=1)
    # How often the service asks ingest for newly accepted events (0: never; tests drive it themselves).
    follow_interval_ms: WholeNumber = Field(
        default=10_000, validation_alias="CARBON_INCENTIVES_FOLLOW_INTERVAL_MS", ge=0
    )
    # Events asked for per page.
    follow_page_size: WholeNumber = Field(
        default=500, validation_alias="CARBON_INCENTIVES_FOLLOW_PAGE_SIZE", ge=1, le=500
    )

    @property
    def rpc_deadline_s(self) -> float:
        return self.rpc_deadline_ms / 1000
