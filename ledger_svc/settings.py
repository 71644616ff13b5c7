"""The ledger's own settings for its scheduler: the CARBON_LEDGER_* variables the kit's Settings does not know."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from ledger_svc.domain.jobs import Schedule
from service_kit.settings import ServiceSettings, WholeNumber

SERVICE = "ledger_svc"


class LedgerSettings(ServiceSettings):
    service_package: ClassVar[str] = SERVICE

    # Run the scheduled jobs (expiry, hold timeouts, monthly close) in this process when it holds the region's lease.
    # Off unless set: in-process tests drive the jobs themselves; `carbon up` and the deployment turn it on.
    scheduler: bool = Field(default=False, validation_alias="CARBON_LEDGER_SCHEDULER")
    # How often a replica tries to take or renew the lease and looks for due jobs.
    tick_ms: WholeNumber = Field(default=5_000, validation_alias="CARBON_LEDGER_SCHEDULER_TICK_MS", ge=10)
    # How long a lease lasts without renewal: a dead leader's jobs pass to another replica after this.
    lease_ms: WholeNumber = Field(default=30_000, validation_alias="CARBON_LEDGER_SCHEDULER_LEASE_MS", ge=100)
    # Lots per expiry transaction, and holds per hold-timeout transaction.
    expiry_batch: WholeNumber = Field(default=1000, validation_alias="CARBON_LEDGER_EXPIRY_BATCH", ge=1, le=10_000)
    # Minutes after 00:00 China time the day's expiry sweep starts.
    expiry_after_minutes: WholeNumber = Field(
        default=5, validation_alias="CARBON_LEDGER_EXPIRY_AFTER_MINUTES", ge=0, le=23 * 60
    )
    # Accounts per lot-mover transaction (ADR 0137), and minutes after 00:00 China time the day's move starts.
    move_lots_batch: WholeNumber = Field(default=1000, validation_alias="CARBON_LEDGER_MOVE_LOTS_BATCH", ge=1, le=1000)
    move_lots_after_minutes: WholeNumber = Field(
        default=10, validation_alias="CARBON_LEDGER_MOVE_LOTS_AFTER_MINUTES", ge=0, le=23 * 60
    )
    # Seconds between two hold-timeout sweeps.
    hold_sweep_every_s: WholeNumber = Field(default=60, validation_alias="CARBON_LEDGER_HOLD_SWEEP_EVERY_S", ge=1)

    @property
    def schedule(self) -> Schedule:
        return Schedule(
            expiry_after=timedelta(minutes=self.expiry_after_minutes),
            hold_sweep_every=timedelta(seconds=self.hold_sweep_every_s),
            move_lots_after=timedelta(minutes=self.move_lots_after_minutes),
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(milliseconds=self.lease_ms)

    @property
    def tick_s(self) -> float:
        return self.tick_ms / 1000
