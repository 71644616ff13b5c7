"""What every route needs, built once from the settings: the ops database, the clients of the other services, the
rate limiter and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from ops_api.clients import Channels, GatewayClient, RegionClients
from ops_api.service.rate_limits import RateLimiter
from ops_api.settings import SERVICE, OpsSettings
from service_kit import db
from service_kit.clock import Clock, system_clock
from service_kit.regions import RegionRegistry
from service_kit.topology import Registry


@dataclass
class OpsContext:
    settings: OpsSettings
    engine: Engine
    regions: RegionClients
    gateway: GatewayClient
    limiter: RateLimiter
    channels: Channels
    clock: Clock = system_clock

    def close(self) -> None:
        self.channels.close()


def open_engine(settings: OpsSettings) -> Engine:
    """The ops database, migrated to head unless CARBON_MIGRATE_ON_START says otherwise."""
    engine = db.make_engine(settings.base.effective_database_url())
    if settings.base.migrate_on_start:
        db.migrate(SERVICE, engine)
    return engine


def build_context(settings: OpsSettings, engine: Engine) -> OpsContext:
    """Regions and the gateway address from the registry file; without one, no regions (health still answers)."""
    registry = RegionRegistry({})
    gateway_address = ""
    if settings.registry_file is not None:
        registry = RegionRegistry.load(settings.registry_file)
        gateway_address = Registry.load(settings.registry_file).gateway_address
    channels = Channels(settings.base)
    timeout_s = settings.call_timeout_ms / 1000
    prefix = settings.base.extra.get("CARBON_REDIS_PREFIX", "carbon:ops:")
    return OpsContext(
        settings=settings,
        engine=engine,
        regions=RegionClients(registry, channels, timeout_s),
        gateway=GatewayClient(gateway_address, channels, timeout_s, settings.gateway_api_key().reveal()),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.base.redis_url, prefix),
        channels=channels,
    )
