"""Every gRPC method of every service, fuzzed (issue 14, defect 5): random and boundary values in every field, and
bytes that do not decode, sent to one region's services running on PostgreSQL (where NUL bytes and column widths
bite). Whatever a client sends, the answer is never INTERNAL or UNKNOWN: bad input is INVALID_ARGUMENT, and anything
else is the service's decision.

CARBON_FUZZ_EXAMPLES sets the examples per method. The default run (`make test`) sends 10 to every method, a fresh
random draw each run (no example database), so the runs add up; `make fuzz-deep` sends 200 to every method (a nightly
job's, or anyone's after changing a request message or its validation); ADR 0024 says why.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from hypothesis import HealthCheck, given, settings

from carbon.gateway.v1 import gateway_service_pb2
from carbon.identity.v1 import identity_service_pb2
from carbon.incentives.v1 import incentives_service_pb2
from carbon.ingest.v1 import ingest_service_pb2
from carbon.ledger.v1 import ledger_service_pb2
from carbon.rewards.v1 import rewards_service_pb2
from gateway.service.forwarding import ROUTES, SERVICE_NAMES
from tests.faults.fuzzing import request_bytes
from tests.faults.region import Region

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
DEFAULT_EXAMPLES = 10
EXAMPLES = int(os.environ.get("CARBON_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


def _service(module: Any, name: str) -> ServiceDescriptor:
    return module.DESCRIPTOR.services_by_name[name]  # type: ignore[no-any-return]


SERVICES: dict[str, ServiceDescriptor] = {
    "ledger_svc": _service(ledger_service_pb2, "LedgerService"),
    "identity_svc": _service(identity_service_pb2, "IdentityService"),
    "ingest_svc": _service(ingest_service_pb2, "IngestService"),
    "rewards_svc": _service(rewards_service_pb2, "RewardsService"),
    "incentives_svc": _service(incentives_service_pb2, "IncentivesService"),
    "gateway": _service(gateway_service_pb2, "GatewayService"),
}
_BY_NAME = {service.full_name: service for service in SERVICES.values()}


def _targets() -> list[tuple[str, MethodDescriptor]]:
    """(server, method) for every method of every service, and the gateway's forwarded regional methods."""
    found = [(server, method) for server, service in SERVICES.items() for method in service.methods]
    for route in ROUTES:
        found.append(("gateway", _BY_NAME[SERVICE_NAMES[route.service]].methods_by_name[route.method]))
    return found


def _call(channel: grpc.Channel, method: MethodDescriptor, payload: bytes) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming and method.server_streaming:
        list(channel.stream_stream(path, None, None)(iter([payload, payload]), timeout=20))
    elif method.client_streaming:
        channel.stream_unary(path, None, None)(iter([payload, payload]), timeout=20)
    elif method.server_streaming:
        list(channel.unary_stream(path, None, None)(payload, timeout=20))
    else:
        channel.unary_unary(path, None, None)(payload, timeout=20)


@pytest.mark.parametrize(
    ("server", "method"), _targets(), ids=[f"{server}:{method.full_name}" for server, method in _targets()]
)
def test_no_request_is_answered_internal_or_unknown(region: Region, server: str, method: MethodDescriptor) -> None:
    channel = region.channels[server]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payload=request_bytes(method.input_type))
    def fuzz(payload: bytes) -> None:
        try:
            _call(channel, method, payload)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            assert code not in FORBIDDEN, f"{method.full_name} answered {code.name}: {error.details()}"  # type: ignore[attr-defined]

    fuzz()
