"""The ops API's settings: the shared CARBON_* variables plus its own, read once in main()."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from service_kit.settings import Secret, Settings, SettingsError

SERVICE = "ops_api"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


@dataclass(frozen=True)
class OpsSettings:
    base: Settings
    registry_file: Path | None = None
    # Every gRPC call gets this deadline.
    call_timeout_ms: int = 5_000
    # Requests per token per minute; above it, 429 with Retry-After.
    rate_limit_per_minute: int = 600
    # The community-centre partner the API submits community events as (registered in each region's ingest).
    community_partner_id: str = "community-centre"
    community_partner_key_id: str = "k1"
    # Secrets by name (CARBON_SECRET_<NAME>): community_partner[_<region>], gateway_api_key.
    secrets: Mapping[str, Secret] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpsSettings:
        env = os.environ if env is None else env
        base = Settings.from_env(SERVICE, env)
        registry = env.get("CARBON_REGISTRY_FILE", "")
        return cls(
            base=base,
            registry_file=Path(registry) if registry else None,
            call_timeout_ms=_int(env, "CARBON_OPS_CALL_TIMEOUT_MS", 5_000, 100, 120_000),
            rate_limit_per_minute=_int(env, "CARBON_OPS_RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000),
            community_partner_id=env.get("CARBON_OPS_COMMUNITY_PARTNER_ID", "community-centre"),
            community_partner_key_id=env.get("CARBON_OPS_COMMUNITY_PARTNER_KEY_ID", "k1"),
            secrets=base.secrets,
        )

    def community_partner_secret(self, region_code: str) -> Secret:
        """CARBON_SECRET_COMMUNITY_PARTNER_<REGION> if set, else CARBON_SECRET_COMMUNITY_PARTNER."""
        return self.secrets.get(f"community_partner_{region_code}") or self.secrets.get("community_partner", Secret(""))

    def gateway_api_key(self) -> Secret:
        return self.secrets.get("gateway_api_key", Secret(""))
