"""Ingest's own settings: the CARBON_* variables the kit's Settings does not know, read once at start."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from ingest_svc.service.orphan_claims import OrphanTiming
from ingest_svc.service.owed_credits import SweepTiming
from service_kit.settings import ServiceSettings, WholeNumber

SERVICE = "ingest_svc"


class IngestSettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    # Where this region's identity and ledger services listen ("": calls fail UNAVAILABLE, DEPENDENCY_NOT_CONFIGURED).
    identity_address: str = Field(default="", validation_alias="CARBON_IDENTITY_ADDRESS")
    ledger_address: str = Field(default="", validation_alias="CARBON_LEDGER_ADDRESS")
    # Where the national gateway listens, for activity claims ("": claims off, each region alone; docs/adr/0413).
    gateway_address: str = Field(default="", validation_alias="CARBON_GATEWAY_ADDRESS")
    # Claim while the record transaction writes (docs/adr/0415); off: claim after the commit, for a gateway not yet
    # upgraded to attempts (a rolling upgrade) and for the benchmark's same-run comparison.
    claim_ahead: bool = Field(default=True, validation_alias="CARBON_INGEST_CLAIM_AHEAD")
    # Every call to identity and the ledger gets this deadline.
    rpc_deadline_ms: WholeNumber = Field(default=10_000, validation_alias="CARBON_INGEST_RPC_DEADLINE_MS", ge=1)
    # How long a partner's previous signing key stays valid after a rotation.
    key_grace_hours: WholeNumber = Field(default=24, validation_alias="CARBON_INGEST_KEY_GRACE_HOURS", ge=0)
    # The dedupe sets' and rate limits' key prefix in Redis ("": carbon:ingest:<region>:).
    redis_prefix: str = Field(default="", validation_alias="CARBON_INGEST_REDIS_PREFIX")
    # Post the credit batches a crash or an outage left owed, at start and then every sweep interval
    # (service/owed_credits.py; tests that drive crediting themselves turn it off).
    resume_on_start: bool = Field(default=True, validation_alias="CARBON_INGEST_RESUME_ON_START")
    # ListAcceptedEvents lists only events accepted at least this long ago (service/following.py says why).
    follow_settle_ms: WholeNumber = Field(default=30_000, validation_alias="CARBON_INGEST_FOLLOW_SETTLE_MS", ge=0)
    # Between sweeps of the owed credits (0: only at start); after failed sweeps the wait doubles up to the ceiling.
    owed_sweep_ms: WholeNumber = Field(default=10_000, validation_alias="CARBON_INGEST_OWED_SWEEP_MS", ge=0)
    owed_sweep_max_backoff_ms: WholeNumber = Field(
        default=300_000, validation_alias="CARBON_INGEST_OWED_SWEEP_MAX_BACKOFF_MS", ge=1
    )
    # A credit batch younger than this is left to the request posting it (every replica sweeps; ADR 0413).
    owed_min_age_ms: WholeNumber = Field(default=30_000, validation_alias="CARBON_INGEST_OWED_MIN_AGE_MS", ge=0)
    # The sweep of claims left by attempts that claimed ahead and never recorded (docs/adr/0416): an attempt younger
    # than the age may still be recording and is left alone (minutes: far above any record transaction); a pass
    # every interval (0: no sweep).
    orphan_claim_age_ms: WholeNumber = Field(
        default=600_000, validation_alias="CARBON_INGEST_ORPHAN_CLAIM_AGE_MS", ge=1000
    )
    orphan_sweep_ms: WholeNumber = Field(default=60_000, validation_alias="CARBON_INGEST_ORPHAN_SWEEP_MS", ge=0)
    # Test hook: the named point where the process dies (service/crash_points.py); empty in production.
    crash_at: str = Field(default="", validation_alias="CARBON_TEST_CRASH_AT")

    @property
    def rpc_deadline_s(self) -> float:
        return self.rpc_deadline_ms / 1000

    @property
    def owed_sweep(self) -> SweepTiming:
        return SweepTiming(
            timedelta(milliseconds=self.owed_sweep_ms),
            timedelta(milliseconds=self.owed_sweep_max_backoff_ms),
            timedelta(milliseconds=self.owed_min_age_ms),
        )

    @property
    def orphan_sweep(self) -> OrphanTiming:
        return OrphanTiming(
            timedelta(milliseconds=self.orphan_sweep_ms), timedelta(milliseconds=self.orphan_claim_age_ms)
        )

    @property
    def key_grace(self) -> timedelta:
        return timedelta(hours=self.key_grace_hours)

    @property
    def redis_key_prefix(self) -> str:
        return self.redis_prefix or f"carbon:ingest:{self.base.region_code}:"
