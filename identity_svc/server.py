"""gRPC servicer for carbon.identity.v1.IdentityService: translates messages, holds no rules."""

from __future__ import annotations

from carbon.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from sqlalchemy import Engine

from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


class IdentityServiceServicer(identity_service_pb2_grpc.IdentityServiceServicer):
    """Methods not yet built answer UNIMPLEMENTED (the generated base class)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    servicer = IdentityServiceServicer(settings, engine)  # type: ignore[abstract]  # unbuilt methods: UNIMPLEMENTED
    return [Registration(identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, servicer, SERVICE_NAME)]
