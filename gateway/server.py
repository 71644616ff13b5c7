"""gRPC servicer for carbon.gateway.v1.GatewayService: translates messages, holds no rules."""

from __future__ import annotations

from sqlalchemy import Engine

from carbon.gateway.v1 import gateway_service_pb2, gateway_service_pb2_grpc
from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = gateway_service_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


class GatewayServiceServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    """Methods not yet built answer UNIMPLEMENTED (the generated base class)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    servicer = GatewayServiceServicer(settings, engine)  # type: ignore[abstract]  # unbuilt methods: UNIMPLEMENTED
    return [Registration(gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server, servicer, SERVICE_NAME)]
