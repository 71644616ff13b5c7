"""Starting the API: settings -> database (migrated) -> gRPC clients -> app -> uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from sqlalchemy import Engine

from ops_api.app import create_app
from ops_api.clients import Services
from ops_api.context import OpsContext
from ops_api.ratelimit import RateLimiter
from ops_api.settings import SERVICE, OpsSettings
from service_kit import db, logs
from service_kit.regions import RegionRegistry
from service_kit.topology import Registry

log = logging.getLogger("carbon.ops_api")
DEFAULT_PORT = 18049


def open_engine(settings: OpsSettings) -> Engine:
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
    services = Services(registry, gateway_address, settings.call_timeout_ms / 1000, settings.gateway_api_key().reveal())
    prefix = settings.base.extra.get("CARBON_REDIS_PREFIX", "carbon:ops:")
    limiter = RateLimiter(settings.rate_limit_per_minute, settings.base.redis_url, prefix)
    return OpsContext(settings, engine, services, limiter)


def serve(settings: OpsSettings) -> int:
    logs.configure(settings.base)
    engine = open_engine(settings)
    context = build_context(settings, engine)
    app = create_app(context)
    port = settings.base.port or DEFAULT_PORT
    config = uvicorn.Config(app, host=settings.base.host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    print(f"READY {SERVICE} 000000 {settings.base.host}:{port}", flush=True)
    try:
        server.run()
    finally:
        context.services.close()
        engine.dispose()
    return 0
