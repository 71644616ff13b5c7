"""The gateway's own settings, read from the CARBON_* variables the kit's Settings does not know (`.extra`), and the
two files they name: the region registry and the callers' configuration."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gateway.domain.callers import GatewayConfig
from gateway.domain.claims import DEFAULT_RETENTION_DAYS
from gateway.domain.transfers import BATCH_TRANSFERS, Timing
from service_kit.regions import RegionRegistry
from service_kit.settings import Settings

log = logging.getLogger("carbon.gateway")
# The lease_owner column's width.
MAX_INSTANCE_NAME = 64


@dataclass(frozen=True)
class GatewaySettings:
    registry_file: str  # CARBON_REGISTRY_FILE; empty: no regions
    resident_auth_jwks_file: str  # CARBON_RESIDENT_AUTH_JWKS_FILE: the regions' keys for resident authorizations
    config_file: str  # CARBON_GATEWAY_CONFIG: who may call (required: the gateway never runs open)
    timing: Timing
    forward_timeout: timedelta  # a forwarded unary call that arrives without a deadline gets this one
    retry_max: timedelta  # the longest a step waits before it tries a region again
    recovery_interval: timedelta  # zero: no recovery thread (tests drive recovery themselves)
    recovery_batch: int  # transfers the recovery loop leases at once (docs/adr/0621)
    crash_at: str  # CARBON_TEST_CRASH_AT: a test hook, empty in production
    redis_prefix: str
    claim_retention_days: int  # activity claims are kept for this many days before today (docs/adr/0606)
    # CARBON_GATEWAY_INSTANCE: a name no other running gateway has and this one keeps across restarts (a pod's name);
    # a gateway started under it takes back the leases its killed predecessor left (docs/adr/0622). Empty: no name.
    instance: str

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewaySettings:
        extra = settings.extra
        return cls(
            registry_file=extra.get("CARBON_REGISTRY_FILE", ""),
            config_file=extra.get("CARBON_GATEWAY_CONFIG", ""),
            resident_auth_jwks_file=extra.get("CARBON_RESIDENT_AUTH_JWKS_FILE", ""),
            timing=Timing(
                transfer_life=_ms(extra, "CARBON_GATEWAY_TRANSFER_LIFE_MS", 60_000),
                call_timeout=_ms(extra, "CARBON_GATEWAY_CALL_TIMEOUT_MS", 5_000),
                margin=_ms(extra, "CARBON_GATEWAY_MARGIN_MS", 2_000),
            ),
            forward_timeout=_ms(extra, "CARBON_GATEWAY_FORWARD_TIMEOUT_MS", 60_000),
            retry_max=_ms(extra, "CARBON_GATEWAY_RETRY_MAX_MS", 30_000),
            recovery_interval=_ms(extra, "CARBON_GATEWAY_RECOVERY_INTERVAL_MS", 1_000),
            recovery_batch=int(extra.get("CARBON_GATEWAY_RECOVERY_BATCH", "") or BATCH_TRANSFERS),
            crash_at=extra.get("CARBON_TEST_CRASH_AT", ""),
            redis_prefix=extra.get("CARBON_REDIS_PREFIX", "carbon:gateway:"),
            claim_retention_days=int(extra.get("CARBON_GATEWAY_CLAIM_RETENTION_DAYS", "") or DEFAULT_RETENTION_DAYS),
            instance=_instance(extra.get("CARBON_GATEWAY_INSTANCE", "")),
        )

    def load_registry(self) -> RegionRegistry:
        return RegionRegistry.load(Path(self.registry_file)) if self.registry_file else RegionRegistry({})

    def load_config(self) -> GatewayConfig:
        if not self.config_file:
            raise ValueError(
                "CARBON_GATEWAY_CONFIG is not set: the gateway needs its callers' configuration and never runs open "
                "(see gateway/domain/callers.py; `carbon up` writes one into the data folder)"
            )
        path = Path(self.config_file)
        try:
            return GatewayConfig.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ValueError(f"gateway config: no file at {path}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"gateway config: {path} is malformed: {error}") from None


def _instance(name: str) -> str:
    if len(name) > MAX_INSTANCE_NAME:
        raise ValueError(f"CARBON_GATEWAY_INSTANCE: at most {MAX_INSTANCE_NAME} characters, got {len(name)}")
    return name


def _ms(extra: Mapping[str, str], name: str, default_ms: int) -> timedelta:
    raw = extra.get(name, "")
    return timedelta(milliseconds=int(raw) if raw else default_ms)
