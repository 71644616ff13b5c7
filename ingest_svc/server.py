"""gRPC servicer for carbon.ingest.v1.IngestService: translates messages, holds no rules."""

from __future__ import annotations

from sqlalchemy import Engine

from carbon.ingest.v1 import ingest_service_pb2, ingest_service_pb2_grpc
from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


class IngestServiceServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    """Methods not yet built answer UNIMPLEMENTED (the generated base class)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    servicer = IngestServiceServicer(settings, engine)  # type: ignore[abstract]  # unbuilt methods: UNIMPLEMENTED
    return [Registration(ingest_service_pb2_grpc.add_IngestServiceServicer_to_server, servicer, SERVICE_NAME)]
