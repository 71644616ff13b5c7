"""gRPC servicer for carbon.ledger.v1.LedgerService: translates messages, holds no rules."""

from __future__ import annotations

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from sqlalchemy import Engine

from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerServiceServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    """Methods not yet built answer UNIMPLEMENTED (the generated base class)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    servicer = LedgerServiceServicer(settings, engine)  # type: ignore[abstract]  # unbuilt methods: UNIMPLEMENTED
    return [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, servicer, SERVICE_NAME)]
