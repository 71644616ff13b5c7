"""gRPC servicer for carbon.rewards.v1.RewardsService: translates messages, holds no rules."""

from __future__ import annotations

from carbon.rewards.v1 import rewards_service_pb2, rewards_service_pb2_grpc
from sqlalchemy import Engine

from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = rewards_service_pb2.DESCRIPTOR.services_by_name["RewardsService"].full_name


class RewardsServiceServicer(rewards_service_pb2_grpc.RewardsServiceServicer):
    """Methods not yet built answer UNIMPLEMENTED (the generated base class)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    servicer = RewardsServiceServicer(settings, engine)  # type: ignore[abstract]  # unbuilt methods: UNIMPLEMENTED
    return [Registration(rewards_service_pb2_grpc.add_RewardsServiceServicer_to_server, servicer, SERVICE_NAME)]
