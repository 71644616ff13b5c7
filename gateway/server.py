"""gRPC servicers of the gateway: carbon.gateway.v1.GatewayService and the forwarded regional methods.

They admit the caller, translate messages (wire.py) and call the use cases in service/; no rules live here.
registrations() wires the gateway from its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import Message
from sqlalchemy import Engine

from carbon.gateway.v1 import gateway_service_pb2 as pb
from carbon.gateway.v1 import gateway_service_pb2_grpc
from gateway import wire
from gateway.clients import RegionClients, deadline_s
from gateway.domain.callers import Caller
from gateway.service.admission import Admission
from gateway.service.cross_region_transfers import TransferService
from gateway.service.directory import directory_entry
from gateway.service.forwarding import ROUTES, SERVICE_NAMES, Forwarder, Route
from gateway.service.recovery import Recovery
from gateway.service.redeem_anywhere import RedeemAnywhereService
from gateway.service.settlement import settlement_report
from gateway.settings import GatewaySettings
from service_kit import health, paging, tls
from service_kit.errors import InvalidArgument
from service_kit.ratelimit import build_limiter
from service_kit.regions import RegionRegistry
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.topology import REGIONAL_SERVICES, RegionEntry
from service_kit.wire import from_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
HEALTH_TIMEOUT_S = 0.5


def admit(admission: Admission, context: grpc.ServicerContext) -> Caller:
    """The caller behind a call, from its metadata and its verified client certificate."""
    return admission.admit(list(context.invocation_metadata() or []), tls.peer_common_name(context))


class GatewayServiceServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        registry: RegionRegistry,
        admission: Admission,
        transfers: TransferService,
        anywhere: RedeemAnywhereService | None = None,
        probe_settings: Settings | None = None,
    ) -> None:
        self._registry = registry
        # The regions' health is asked with the gateway's own TLS material when they speak TLS.
        self._probe_settings = probe_settings
        self._admission = admission
        self._transfers = transfers
        self._anywhere = anywhere or RedeemAnywhereService(transfers)
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="region-health")

    def _deadline_s(self, context: grpc.ServicerContext) -> float:
        return deadline_s(context.time_remaining(), self._transfers.timing.call_timeout.total_seconds())

    def ListRegions(self, request: pb.ListRegionsRequest, context: grpc.ServicerContext) -> pb.ListRegionsResponse:
        admit(self._admission, context)
        page_size = paging.page_size(request.page_size)
        codes = [code for code in self._registry.sorted_codes() if code > request.page_token]
        page = [self._registry.regions[code] for code in codes[:page_size]]
        states = list(self._probe_pool.map(lambda entry: _region_health(entry, self._probe_settings), page))
        next_token = page[-1].region_code if len(codes) > page_size else ""
        return pb.ListRegionsResponse(
            regions=[wire.region_message(entry, state) for entry, state in zip(page, states, strict=True)],
            next_page_token=next_token,
        )

    def CreateCrossRegionTransfer(
        self, request: pb.CreateCrossRegionTransferRequest, context: grpc.ServicerContext
    ) -> pb.CreateCrossRegionTransferResponse:
        transfer = self._transfers.create(admit(self._admission, context), wire.transfer_request(request))
        return pb.CreateCrossRegionTransferResponse(transfer=wire.transfer_message(transfer))

    def GetCrossRegionTransfer(
        self, request: pb.GetCrossRegionTransferRequest, context: grpc.ServicerContext
    ) -> pb.GetCrossRegionTransferResponse:
        transfer = self._transfers.get(admit(self._admission, context), request.transfer_id)
        return pb.GetCrossRegionTransferResponse(transfer=wire.transfer_message(transfer))

    def ListCrossRegionTransfers(
        self, request: pb.ListCrossRegionTransfersRequest, context: grpc.ServicerContext
    ) -> pb.ListCrossRegionTransfersResponse:
        caller = admit(self._admission, context)
        page_size = paging.page_size(request.page_size)
        page, next_token = self._transfers.list_page(
            caller, request.account_number, wire.transfer_state(request.state), page_size, request.page_token
        )
        return pb.ListCrossRegionTransfersResponse(
            transfers=[wire.transfer_message(transfer) for transfer in page], next_page_token=next_token
        )

    def RedeemAnywhere(
        self, request: pb.RedeemAnywhereRequest, context: grpc.ServicerContext
    ) -> pb.RedeemAnywhereResponse:
        item, paid_by = self._anywhere.redeem(admit(self._admission, context), wire.redeem_anywhere_request(request))
        return wire.redeem_anywhere_response(item, paid_by)

    def GetSettlementReport(
        self, request: pb.GetSettlementReportRequest, context: grpc.ServicerContext
    ) -> pb.GetSettlementReportResponse:
        admit(self._admission, context)
        if not request.HasField("period_start"):
            raise InvalidArgument("period_start", "is required")
        if not request.HasField("period_end"):
            raise InvalidArgument("period_end", "is required")
        report = settlement_report(
            self._transfers.clients,
            from_timestamp(request.period_start),
            from_timestamp(request.period_end),
            self._deadline_s(context),
        )
        return pb.GetSettlementReportResponse(
            gross=[wire.position_message(position) for position in report.gross],
            net=[wire.position_message(position) for position in report.net],
            clearing_balanced=report.clearing_balanced,
        )

    def GetDirectoryEntry(
        self, request: pb.GetDirectoryEntryRequest, context: grpc.ServicerContext
    ) -> pb.GetDirectoryEntryResponse:
        accounts = directory_entry(
            self._transfers.clients, admit(self._admission, context), request.account_number, self._deadline_s(context)
        )
        return wire.directory_response(accounts)


def _region_health(entry: RegionEntry, settings: Settings | None) -> str:
    """SERVING when all four of the region's services are; NOT_SERVING when any answers otherwise."""
    states = [
        health.check(
            getattr(entry, f"{service.removesuffix('_svc')}_address"), timeout_s=HEALTH_TIMEOUT_S, settings=settings
        )
        for service in REGIONAL_SERVICES
    ]
    return "SERVING" if all(state == "SERVING" for state in states) else "NOT_SERVING"


# --- the regional methods, forwarded --------------------------------------------------------------------------------


def forwarding_handlers(admission: Admission, forwarder: Forwarder) -> dict[str, grpc.GenericRpcHandler[Any, Any]]:
    """One generic handler per regional service name, serving the methods ROUTES lists for it."""
    per_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
    for route in ROUTES:
        per_service.setdefault(SERVICE_NAMES[route.service], {})[route.method] = grpc.unary_unary_rpc_method_handler(
            _forwarded(admission, forwarder, route),
            request_deserializer=route.request.FromString,
            response_serializer=route.response.SerializeToString,
        )
    return {
        service: grpc.method_handlers_generic_handler(service, handlers) for service, handlers in per_service.items()
    }


def _forwarded(
    admission: Admission, forwarder: Forwarder, route: Route
) -> Callable[[Message, grpc.ServicerContext], Message]:
    def behaviour(request: Message, context: grpc.ServicerContext) -> Message:
        return forwarder.forward(route, request, admit(admission, context), context.time_remaining())

    return behaviour


def add_generic_handler(handler: grpc.GenericRpcHandler[Any, Any], server: grpc.Server) -> None:
    server.add_generic_rpc_handlers((handler,))


# --- wiring -----------------------------------------------------------------------------------------------------------


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    own = GatewaySettings.from_settings(settings)
    registry = own.load_registry()
    transfers = TransferService(
        engine,
        RegionClients(registry, settings),
        own.load_config(),
        own.timing,
        crash_at=own.crash_at,
        retry_max=own.retry_max,
    )
    anywhere = RedeemAnywhereService(transfers)
    recovery = Recovery(transfers, anywhere)
    if own.recovery_interval > timedelta(0):
        recovery.start(own.recovery_interval.total_seconds())
    admission = Admission(transfers.config, build_limiter(settings.redis_url, own.redis_prefix))
    forwarder = Forwarder(transfers.clients, transfers.timing)
    servicer = GatewayServiceServicer(registry, admission, transfers, anywhere, settings)
    return [
        *(
            Registration(add_generic_handler, handler, name)
            for name, handler in forwarding_handlers(admission, forwarder).items()
        ),
        Registration(
            gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server,
            servicer,
            SERVICE_NAME,
            on_stop=recovery.stop,
        ),
    ]
