"""Ingest's own settings: the CARBON_* variables the kit's Settings does not know, read once at start."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from service_kit.settings import ServiceSettings, WholeNumber

SERVICE = "ingest_svc"


class IngestSettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    # Where this region's identity and ledger services listen ("": calls fail UNAVAILABLE, DEPENDENCY_NOT_CONFIGURED).
    identity_address: str = Field(default="", validation_alias="CARBON_IDENTITY_ADDRESS")
    ledger_address: str = Field(default="", validation_alias="CARBON_LEDGER_ADDRESS")
    # Where the national gateway listens, for activity claims ("": claims off, each region alone; docs/adr/0413).
    gateway_address: str = Field(default="", validation_alias="CARBON_GATEWAY_ADDRESS")
    # Every call to identity and the ledger gets this deadline.
    rpc_deadline_ms: WholeNumber = Field(default=10_000, validation_alias="CARBON_INGEST_RPC_DEADLINE_MS", ge=1)
    # How long a partner's previous signing key stays valid after a rotation.
    key_grace_hours: WholeNumber = Field(default=24, validation_alias="CARBON_INGEST_KEY_GRACE_HOURS", ge=0)
    # The dedupe sets' and rate limits' key prefix in Redis ("": carbon:ingest:<region>:).
    redis_prefix: str = Field(default="", validation_alias="CARBON_INGEST_REDIS_PREFIX")
    # Post the credit batches a crash left owed when the service starts (tests that drive it themselves turn it off).
    resume_on_start: bool = Field(default=True, validation_alias="CARBON_INGEST_RESUME_ON_START")
    # Test hook: the named point where the process dies (service/crash_points.py); empty in production.
    crash_at: str = Field(default="", validation_alias="CARBON_TEST_CRASH_AT")

    @property
    def rpc_deadline_s(self) -> float:
        return self.rpc_deadline_ms / 1000

    @property
    def key_grace(self) -> timedelta:
        return timedelta(hours=self.key_grace_hours)

    @property
    def redis_key_prefix(self) -> str:
        return self.redis_prefix or f"carbon:ingest:{self.base.region_code}:"
