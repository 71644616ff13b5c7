"""Asks servers how they are, over the standard gRPC health checking protocol."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service_kit.channels import open_channel
from service_kit.settings import Settings


def check(address: str, service: str = "", timeout_s: float = 1.0, settings: Settings | None = None) -> str:
    """SERVING, NOT_SERVING, SERVICE_UNKNOWN, or UNREACHABLE when nothing answers in time. `settings` name the TLS
    material when the servers speak TLS."""
    with open_channel(address, settings) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def check_http(address: str, path: str = "/healthz", timeout_s: float = 1.0) -> str:
    """SERVING when an HTTP service answers 200 on its health path; NOT_SERVING or UNREACHABLE otherwise."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout_s) as response:
            return "SERVING" if response.status == 200 else "NOT_SERVING"
    except urllib.error.HTTPError:
        return "NOT_SERVING"
    except (urllib.error.URLError, OSError):
        return "UNREACHABLE"


def probe(service: str, address: str, timeout_s: float = 1.0, settings: Settings | None = None) -> str:
    """Health of one of our processes: the ops HTTP API over HTTP, every gRPC service over gRPC health."""
    if service == "ops_api":
        return check_http(address, timeout_s=timeout_s)
    return check(address, timeout_s=timeout_s, settings=settings)
