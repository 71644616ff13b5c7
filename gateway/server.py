"""gRPC servicer for carbon.gateway.v1.GatewayService: translates messages, holds no rules."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from sqlalchemy import Engine

from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from gateway.registry import RegionRegistry
from service_kit import health
from service_kit.errors import InvalidArgument
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.topology import REGIONAL_SERVICES, RegionEntry

SERVICE_NAME = gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
HEALTH_TIMEOUT_S = 0.5


class GatewayServiceServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    """Methods not yet built answer UNIMPLEMENTED (the generated base class)."""

    def __init__(self, settings: Settings, engine: Engine, registry: RegionRegistry) -> None:
        self._settings = settings
        self._engine = engine
        self._registry = registry
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="region-health")

    def ListRegions(
        self, request: gateway_service_pb2.ListRegionsRequest, context: grpc.ServicerContext
    ) -> gateway_service_pb2.ListRegionsResponse:
        page_size = _page_size(request.page_size)
        codes = [code for code in self._registry.sorted_codes() if code > request.page_token]
        page = [self._registry.regions[code] for code in codes[:page_size]]
        states = list(self._probe_pool.map(_region_health, page))
        next_token = page[-1].region_code if len(codes) > page_size else ""
        return gateway_service_pb2.ListRegionsResponse(
            regions=[_region_message(entry, state) for entry, state in zip(page, states, strict=True)],
            next_page_token=next_token,
        )


def _page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _region_health(entry: RegionEntry) -> str:
    """SERVING when all four of the region's services are; NOT_SERVING when any answers otherwise."""
    states = [
        health.check(getattr(entry, f"{service.removesuffix('_svc')}_address"), timeout_s=HEALTH_TIMEOUT_S)
        for service in REGIONAL_SERVICES
    ]
    return "SERVING" if all(state == "SERVING" for state in states) else "NOT_SERVING"


def _region_message(entry: RegionEntry, state: str) -> gateway_service_pb2.Region:
    return gateway_service_pb2.Region(
        region_code=entry.region_code,
        name_en=entry.name_en,
        name_zh=entry.name_zh,
        identity_address=entry.identity_address,
        ingest_address=entry.ingest_address,
        ledger_address=entry.ledger_address,
        rewards_address=entry.rewards_address,
        health=state,
    )


def load_registry(settings: Settings) -> RegionRegistry:
    path = settings.extra.get("CARBON_REGISTRY_FILE", "")
    if not path:
        return RegionRegistry({})
    return RegionRegistry.load(Path(path))


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    servicer = GatewayServiceServicer(settings, engine, load_registry(settings))  # type: ignore[abstract]  # unbuilt: UNIMPLEMENTED
    return [Registration(gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server, servicer, SERVICE_NAME)]
