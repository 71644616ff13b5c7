"""The one place that starts a gRPC server: health checking, reflection, error mapping, graceful shutdown."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service_kit import logs, reflection, telemetry, tls
from service_kit.access import access_interceptor
from service_kit.interceptors import ErrorMappingInterceptor
from service_kit.settings import Settings
from service_kit.status import error_domain

log = logging.getLogger("carbon.server")

# Bound every message: a batch of several thousand events fits easily, a runaway client does not.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# A batch of 500 events allocates tens of thousands of container objects that die with the batch; the default
# first-generation threshold (700) collected several times per batch (~15% of ingest's CPU). See
# docs/adr/0007-garbage-collector-tuned-for-batches.md.
YOUNG_GENERATION_THRESHOLD = 50_000


@dataclass(frozen=True)
class Registration:
    """One gRPC service to serve: the generated add_*_to_server function, the servicer, its full name.

    on_stop runs after the server has drained, e.g. to stop a background recovery thread the servicer started.
    reflection_pool describes the services as served when that is not the generated descriptors (the gateway serves
    part of the regional services); None: the default pool.
    """

    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: Any
    full_name: str
    on_stop: Callable[[], None] | None = None
    reflection_pool: DescriptorPool | None = None


class PortInUse(RuntimeError):
    pass


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    port: int
    service_names: list[str]
    stop_hooks: list[Callable[[], None]]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace_s: float = 0) -> None:
        """NOT_SERVING first (load balancers move away), then drain in-flight RPCs, then the stop hooks."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        for hook in self.stop_hooks:
            try:
                hook()
            except Exception:
                log.exception("stop hook failed")


def start_server(settings: Settings, registrations: Sequence[Registration]) -> RunningServer:
    """Builds, binds and starts a server; every service is marked SERVING. Port 0 picks a free port."""
    error_mapping = ErrorMappingInterceptor(error_domain(settings.service), telemetry.rpc_metrics())
    # Innermost: a refused call is still counted and traced, and no servicer runs before the caller is known.
    access = access_interceptor(settings, error_domain(settings.service))
    interceptors = [*telemetry.server_interceptors(), error_mapping, access]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=settings.service),
        interceptors=interceptors,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Replicas of one service may share a port (SO_REUSEPORT) only when asked to; otherwise a second
            # process on the same port must fail loudly.
            ("grpc.so_reuseport", 1 if settings.extra.get("CARBON_REUSE_PORT") == "1" else 0),
        ],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [registration.full_name for registration in registrations]
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
    pool = next((item.reflection_pool for item in registrations if item.reflection_pool is not None), None)
    reflection.enable([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server, pool)
    credentials = tls.server_credentials(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.address)
        else:
            port = server.add_secure_port(settings.address, credentials)
    except RuntimeError as error:
        raise PortInUse(f"cannot listen on {settings.address}: {error}") from None
    if port == 0:
        raise PortInUse(f"cannot listen on {settings.address}: the port is in use")
    server.start()
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    hooks = [registration.on_stop for registration in registrations if registration.on_stop is not None]
    return RunningServer(server, health_servicer, port, names, hooks)


def tune_garbage_collector() -> None:
    """For a long-running service process, once it is ready: what exists now (modules, catalogs, caches, the
    server) is frozen out of every later collection, and the young generation is collected per tens of thousands
    of allocations rather than per 700. Reference counting still frees nearly everything at once; only cycles
    wait longer."""
    gc.collect()
    gc.freeze()
    _threshold0, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, threshold1, threshold2)


def serve(settings: Settings, registrations: Sequence[Registration], on_stop: Callable[[], None] | None = None) -> None:
    """Runs until SIGTERM or SIGINT, then reports NOT_SERVING, drains in-flight RPCs and returns."""
    running = start_server(settings, registrations)
    tune_garbage_collector()
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info(
        "serving", extra={"address": f"{settings.host}:{running.port}", "services": ",".join(running.service_names)}
    )
    logs.announce_ready(settings, settings.service, settings.region_code, f"{settings.host}:{running.port}")
    stop_requested.wait()
    running.stop(settings.grace_period_s)
    if on_stop is not None:
        on_stop()
    log.info("stopped")
