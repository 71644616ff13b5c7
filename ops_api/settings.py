"""The ops API's settings: the shared CARBON_* variables (`base`) plus its own, read once in main()."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field

from service_kit.settings import EmptyIsUnset, Secret, ServiceSettings, Settings, WholeNumber

SERVICE = "ops_api"


class OpsSettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    registry_file: Annotated[Path | None, EmptyIsUnset] = Field(default=None, validation_alias="CARBON_REGISTRY_FILE")
    # Every gRPC call gets this deadline.
    call_timeout_ms: WholeNumber = Field(
        default=5_000, validation_alias="CARBON_OPS_CALL_TIMEOUT_MS", ge=100, le=120_000
    )
    # Requests per token per minute; above it, 429 with Retry-After.
    rate_limit_per_minute: WholeNumber = Field(
        default=600, validation_alias="CARBON_OPS_RATE_LIMIT_PER_MINUTE", ge=1, le=1_000_000
    )
    # The community-centre partner the API submits community events as (registered in each region's ingest).
    community_partner_id: str = Field(default="community-centre", validation_alias="CARBON_OPS_COMMUNITY_PARTNER_ID")
    community_partner_key_id: str = Field(default="k1", validation_alias="CARBON_OPS_COMMUNITY_PARTNER_KEY_ID")
    # Secrets by name (CARBON_SECRET_<NAME>): community_partner[_<region>], gateway_api_key.
    secrets: Mapping[str, Secret] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, base: Settings) -> OpsSettings:
        return super().from_settings(base).model_copy(update={"secrets": base.secrets})

    def community_partner_secret(self, region_code: str) -> Secret:
        """CARBON_SECRET_COMMUNITY_PARTNER_<REGION> if set, else CARBON_SECRET_COMMUNITY_PARTNER."""
        return self.secrets.get(f"community_partner_{region_code}") or self.secrets.get("community_partner", Secret(""))

    def gateway_api_key(self) -> Secret:
        return self.secrets.get("gateway_api_key", Secret(""))
