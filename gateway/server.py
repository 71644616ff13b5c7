"""gRPC servicers of the gateway: carbon.gateway.v1.GatewayService, the forwarded regional methods, and the refusal
of every other method.

They admit the caller, translate messages (wire.py) and call the use cases in service/; no rules live here.
registrations() wires the gateway from its settings; reflection shows only what the gateway serves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from sqlalchemy import Engine

from carbon.gateway.v1 import gateway_service_pb2 as pb
from carbon.gateway.v1 import gateway_service_pb2_grpc
from gateway import wire
from gateway.clients import RegionClients, deadline_s
from gateway.domain.callers import Caller
from gateway.domain.claims import (
    DEFAULT_RETENTION_DAYS,
    attempt_query,
    claims_from_columns,
    conflict_days,
    release_from_columns,
)
from gateway.domain.transfers import Transfer
from gateway.service.admission import Admission
from gateway.service.claims import ActivityClaims, claimant_region, internal_caller_region
from gateway.service.cross_region_transfers import TransferService
from gateway.service.directory import directory_entry
from gateway.service.forwarding import ROUTE_FILES, ROUTES, SERVICE_NAMES, Forwarder, NotServed, Route
from gateway.service.guardians import guardian_standing
from gateway.service.national_figures import CHARITY_PROJECTS_PATH, NationalFigures
from gateway.service.personal_data_export import document_chunks, export_personal_data
from gateway.service.recovery import Recovery
from gateway.service.redeem_anywhere import RedeemAnywhereService
from gateway.service.resident_authorizations import ResidentAuthorizations
from gateway.service.settlement import settlement_report
from gateway.service.transfer_batches import Outcome, TransferBatches
from gateway.settings import GatewaySettings
from service_kit import health, paging, tls
from service_kit.clock import system_clock
from service_kit.errors import DomainError, InvalidArgument
from service_kit.failures import idempotent
from service_kit.ratelimit import build_limiter
from service_kit.regions import RegionRegistry
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.telemetry import current_trace_id
from service_kit.topology import REGIONAL_SERVICES, RegionEntry
from service_kit.wire import from_timestamp

log = logging.getLogger("carbon.gateway")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
HEALTH_TIMEOUT_S = 0.5


def _expected(outcome: Outcome) -> Transfer | DomainError | None:
    """An item's outcome for its answer; an unexpected failure (None) is logged here, as the edge logs one."""
    if isinstance(outcome, (Transfer, DomainError)):
        return outcome
    log.error("a transfer of a batch failed unexpectedly", exc_info=outcome, extra={"trace_id": current_trace_id()})
    return None


def admit(admission: Admission, context: grpc.ServicerContext, method: str) -> Caller:
    """The caller behind a call of one of GatewayService's methods, from its metadata and its verified client
    certificate, allowed to call it."""
    path = f"/{SERVICE_NAME}/{method}"
    return admission.admit(list(context.invocation_metadata() or []), tls.peer_common_name(context), path)


class GatewayServiceServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        registry: RegionRegistry,
        admission: Admission,
        transfers: TransferService,
        anywhere: RedeemAnywhereService | None = None,
        probe_settings: Settings | None = None,
        figures: NationalFigures | None = None,
        claims: ActivityClaims | None = None,
    ) -> None:
        self._registry = registry
        self._claims = claims or ActivityClaims(transfers.engine, DEFAULT_RETENTION_DAYS)
        # The regions' health is asked with the gateway's own TLS material when they speak TLS.
        self._probe_settings = probe_settings
        self._admission = admission
        self._transfers = transfers
        self._batches = TransferBatches(transfers)
        self._anywhere = anywhere or RedeemAnywhereService(transfers)
        self._figures = figures or NationalFigures(transfers.clients)
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="region-health")

    def _deadline_s(self, context: grpc.ServicerContext) -> float:
        return deadline_s(context.time_remaining(), self._transfers.timing.call_timeout.total_seconds())

    @idempotent
    def ListRegions(self, request: pb.ListRegionsRequest, context: grpc.ServicerContext) -> pb.ListRegionsResponse:
        caller = admit(self._admission, context, "ListRegions")
        page_size = paging.page_size(request.page_size)
        after = paging.decode_text(request.page_token, "regions") or ""
        codes = [code for code in self._registry.sorted_codes() if code > after]
        page = [self._registry.regions[code] for code in codes[:page_size]]
        states = list(self._probe_pool.map(lambda entry: _region_health(entry, self._probe_settings), page))
        next_token = paging.encode_token("regions", page[-1].region_code) if len(codes) > page_size else ""
        return pb.ListRegionsResponse(
            regions=[
                wire.region_message(entry, state, addresses=caller.operator)
                for entry, state in zip(page, states, strict=True)
            ],
            next_page_token=next_token,
        )

    def CreateCrossRegionTransfer(
        self, request: pb.CreateCrossRegionTransferRequest, context: grpc.ServicerContext
    ) -> pb.CreateCrossRegionTransferResponse:
        caller = admit(self._admission, context, "CreateCrossRegionTransfer")
        transfer = self._transfers.create(caller, wire.transfer_request(request), request.resident_authorization)
        return pb.CreateCrossRegionTransferResponse(transfer=wire.transfer_message(transfer))

    def CreateCrossRegionTransfers(
        self, request: pb.CreateCrossRegionTransfersRequest, context: grpc.ServicerContext
    ) -> pb.CreateCrossRegionTransfersResponse:
        caller = admit(self._admission, context, "CreateCrossRegionTransfers")
        items = [(wire.transfer_request(item), item.resident_authorization) for item in request.transfers]
        outcomes = self._batches.create(caller, items)
        return pb.CreateCrossRegionTransfersResponse(
            results=[
                wire.transfer_result(item.transfer_id, _expected(outcome), current_trace_id())
                for item, outcome in zip(request.transfers, outcomes, strict=True)
            ]
        )

    @idempotent
    def GetCrossRegionTransfer(
        self, request: pb.GetCrossRegionTransferRequest, context: grpc.ServicerContext
    ) -> pb.GetCrossRegionTransferResponse:
        transfer = self._transfers.get(admit(self._admission, context, "GetCrossRegionTransfer"), request.transfer_id)
        return pb.GetCrossRegionTransferResponse(transfer=wire.transfer_message(transfer))

    @idempotent
    def ListCrossRegionTransfers(
        self, request: pb.ListCrossRegionTransfersRequest, context: grpc.ServicerContext
    ) -> pb.ListCrossRegionTransfersResponse:
        caller = admit(self._admission, context, "ListCrossRegionTransfers")
        page_size = paging.page_size(request.page_size)
        page, next_token = self._transfers.list_page(
            caller,
            request.account_number,
            wire.transfer_state(request.state),
            page_size,
            paging.decode_text(request.page_token, "cross_region_transfers") or "",
        )
        next_token = paging.encode_token("cross_region_transfers", next_token) if next_token else ""
        return pb.ListCrossRegionTransfersResponse(
            transfers=[wire.transfer_message(transfer) for transfer in page], next_page_token=next_token
        )

    def RedeemAnywhere(
        self, request: pb.RedeemAnywhereRequest, context: grpc.ServicerContext
    ) -> pb.RedeemAnywhereResponse:
        caller = admit(self._admission, context, "RedeemAnywhere")
        item, paid_by = self._anywhere.redeem(
            caller, wire.redeem_anywhere_request(request), request.resident_authorization
        )
        return wire.redeem_anywhere_response(item, paid_by)

    @idempotent
    def GetSettlementReport(
        self, request: pb.GetSettlementReportRequest, context: grpc.ServicerContext
    ) -> pb.GetSettlementReportResponse:
        admit(self._admission, context, "GetSettlementReport")
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

    @idempotent
    def GetNationalFigures(
        self, request: pb.GetNationalFiguresRequest, context: grpc.ServicerContext
    ) -> pb.GetNationalFiguresResponse:
        admit(self._admission, context, "GetNationalFigures")
        return self._figures.month(request.year, request.month, system_clock(), self._deadline_s(context))

    @idempotent
    def GetExpiringAhead(
        self, request: pb.GetExpiringAheadRequest, context: grpc.ServicerContext
    ) -> pb.GetExpiringAheadResponse:
        admit(self._admission, context, "GetExpiringAhead")
        return self._figures.expiring_ahead(request.months_ahead, self._deadline_s(context))

    @idempotent
    def GetDirectoryEntry(
        self, request: pb.GetDirectoryEntryRequest, context: grpc.ServicerContext
    ) -> pb.GetDirectoryEntryResponse:
        accounts = directory_entry(
            self._transfers.clients,
            admit(self._admission, context, "GetDirectoryEntry"),
            request.account_number,
            self._deadline_s(context),
        )
        return wire.directory_response(accounts)

    @idempotent
    def ClaimActivities(
        self, request: pb.ClaimActivitiesRequest, context: grpc.ServicerContext
    ) -> pb.ClaimActivitiesResponse:
        region_code = claimant_region(f"/{SERVICE_NAME}/ClaimActivities")
        claims = claims_from_columns(
            request.fingerprints,
            request.key_ids,
            request.occurred_days,
            request.partner_ids,
            request.event_ids,
            self._claims.retained(),
            request.attempt_id,
            request.recorded,
        )
        answers = self._claims.answer(region_code, claims)
        return wire.claims_response(answers.holders, answers.other_attempts)

    @idempotent
    def ReleaseActivityClaims(
        self, request: pb.ReleaseActivityClaimsRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseActivityClaimsResponse:
        region_code = claimant_region(f"/{SERVICE_NAME}/ReleaseActivityClaims")
        claims = release_from_columns(
            request.fingerprints, request.occurred_days, request.attempt_id, self._claims.retained()
        )
        return pb.ReleaseActivityClaimsResponse(released=self._claims.release(region_code, claims))

    @idempotent
    def ListClaimAttempts(
        self, request: pb.ListClaimAttemptsRequest, context: grpc.ServicerContext
    ) -> pb.ListClaimAttemptsResponse:
        region_code = claimant_region(f"/{SERVICE_NAME}/ListClaimAttempts")
        query = attempt_query(request.min_age_seconds, request.page_size, request.page_token)
        return wire.attempts_response(self._claims.attempts(region_code, query), query, request.page_token)

    @idempotent
    def CheckGuardian(
        self, request: pb.CheckGuardianRequest, context: grpc.ServicerContext
    ) -> pb.CheckGuardianResponse:
        asking_region = internal_caller_region(f"/{SERVICE_NAME}/CheckGuardian")
        answer = guardian_standing(
            self._transfers.clients,
            asking_region,
            request.guardian_account_number,
            request.platform,
            self._deadline_s(context),
        )
        return pb.CheckGuardianResponse(
            standing=answer.standing,  # type: ignore[arg-type]
            platform_bound=answer.platform_bound,
            region_code=answer.region_code,
        )

    @idempotent
    def ListClaimConflicts(
        self, request: pb.ListClaimConflictsRequest, context: grpc.ServicerContext
    ) -> pb.ListClaimConflictsResponse:
        admit(self._admission, context, "ListClaimConflicts")
        first, last = conflict_days(request.from_day, request.to_day)
        return wire.conflicts_response(self._claims.conflicts(first, last))

    @idempotent
    def ExportPersonalData(
        self, request: pb.ExportPersonalDataRequest, context: grpc.ServicerContext
    ) -> pb.ExportPersonalDataResponse:
        caller = admit(self._admission, context, "ExportPersonalData")
        document = export_personal_data(self._transfers, caller, request.account_number, self._deadline_s(context))
        return pb.ExportPersonalDataResponse(document_json=document)

    @idempotent
    def StreamPersonalData(
        self, request: pb.StreamPersonalDataRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamPersonalDataResponse]:
        caller = admit(self._admission, context, "StreamPersonalData")
        document = export_personal_data(self._transfers, caller, request.account_number, self._deadline_s(context))
        for chunk, last, total_bytes in document_chunks(document.encode()):
            yield pb.StreamPersonalDataResponse(chunk=chunk, last=last, total_bytes=total_bytes)


def _region_health(entry: RegionEntry, settings: Settings | None) -> str:
    """SERVING when all the region's services (those it runs) are; NOT_SERVING when any answers otherwise."""
    states = [
        health.check(
            getattr(entry, f"{service.removesuffix('_svc')}_address"), timeout_s=HEALTH_TIMEOUT_S, settings=settings
        )
        for service in REGIONAL_SERVICES
        if getattr(entry, f"{service.removesuffix('_svc')}_address")
    ]
    return "SERVING" if all(state == "SERVING" for state in states) else "NOT_SERVING"


# --- the regional methods, forwarded; the rest refused with a reason ----------------------------------------------

NOT_SERVED_REASON = "METHOD_NOT_SERVED_BY_GATEWAY"
# Services of the gateway's own that the catch-all leaves alone (their handlers answer, or gRPC's own refusal does).
_OWN_SERVICES = frozenset(
    {
        SERVICE_NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class ForwardingHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Every method ROUTES lists, request and response as bytes; any other method of a regional service (or of no
    service at all) is UNIMPLEMENTED with ErrorInfo reason METHOD_NOT_SERVED_BY_GATEWAY."""

    def __init__(self, forwarder: Forwarder) -> None:
        self._handlers = {route.path: _handler(forwarder, route) for route in ROUTES}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        if method.lstrip("/").partition("/")[0] in _OWN_SERVICES:
            return None
        return grpc.stream_stream_rpc_method_handler(functools.partial(_not_served, method.lstrip("/")))


def _handler(forwarder: Forwarder, route: Route) -> grpc.RpcMethodHandler[Any, Any]:
    if route.client_streaming:
        return grpc.stream_unary_rpc_method_handler(
            lambda requests, context: forwarder.client_stream(route, requests, context)
        )
    return grpc.unary_unary_rpc_method_handler(lambda request, context: forwarder.unary(route, request, context))


def _not_served(method: str, _requests: Iterator[bytes], _context: grpc.ServicerContext) -> Iterator[bytes]:
    raise NotServed(
        NOT_SERVED_REASON,
        f"the gateway does not serve {method}: only the public methods of the regional services are served here",
        {"method": method},
    )
    yield b""  # a generator: the stream handler kind that fits calls of every arity


def add_generic_handler(handler: grpc.GenericRpcHandler[Any, Any], server: grpc.Server) -> None:
    server.add_generic_rpc_handlers((handler,))


def reflection_pool() -> descriptor_pool.DescriptorPool:
    """The descriptors the gateway's reflection shows: its own service, health, reflection, and each regional service
    with only the methods it serves (a method it refuses is not advertised)."""
    served = {route.path.lstrip("/") for route in ROUTES}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        for service in proto.service:
            full_name = f"{proto.package}.{service.name}"
            if full_name in SERVICE_NAMES.values():
                kept = [method for method in service.method if f"{full_name}/{method.name}" in served]
                del service.method[:]
                service.method.extend(kept)
        pool.Add(proto)
        added.add(file.name)

    for file in (pb.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR, *ROUTE_FILES):
        add(file)
    return pool


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
        residents=ResidentAuthorizations.from_file(own.resident_auth_jwks_file),
        lease_owner=own.instance,
    )
    anywhere = RedeemAnywhereService(transfers)
    recovery = Recovery(transfers, anywhere, batch_size=own.recovery_batch)
    if own.instance:  # before anything is driven: what the previous process under this name leased, it left
        recovery.take_back_leases()
    if own.recovery_interval > timedelta(0):
        recovery.start(own.recovery_interval.total_seconds())
    admission = Admission(transfers.config, build_limiter(settings.redis_url, own.redis_prefix))
    figures = NationalFigures(transfers.clients)
    completions = {CHARITY_PROJECTS_PATH: figures.with_units_national}
    forwarder = Forwarder(
        transfers.clients,
        admission,
        own.forward_timeout.total_seconds(),
        completions,
        known_accounts=transfers.known_accounts,
    )
    forwarding = ForwardingHandler(forwarder)
    claims = ActivityClaims(engine, own.claim_retention_days)
    servicer = GatewayServiceServicer(registry, admission, transfers, anywhere, settings, figures, claims)
    pool = reflection_pool()
    regional = list(SERVICE_NAMES.values())

    def stop() -> None:
        recovery.stop()
        figures.close()

    return [
        # One handler serves every regional service; the first registration adds it, the others only name theirs.
        Registration(add_generic_handler, forwarding, regional[0], reflection_pool=pool),
        *(Registration(_served_by_forwarding, forwarding, name) for name in regional[1:]),
        Registration(
            gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server,
            servicer,
            SERVICE_NAME,
            on_stop=stop,
            reflection_pool=pool,
        ),
    ]


def _served_by_forwarding(_handler: grpc.GenericRpcHandler[Any, Any], _server: grpc.Server) -> None:
    """The forwarding handler is added once (by the first regional service's registration)."""
