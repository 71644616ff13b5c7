"""gRPC servicer for carbon.gateway.v1.GatewayService: translates messages, holds no rules."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import grpc
from sqlalchemy import Engine

from carbon.gateway.v1 import gateway_service_pb2 as pb
from carbon.gateway.v1 import gateway_service_pb2_grpc
from gateway.anywhere import RedeemAnywhereService
from gateway.callers import Caller, GatewayConfig
from gateway.clients import RegionClients, deadline_s
from gateway.directory import directory_entry
from gateway.domain import AnywhereRequest, Position, State, Timing, Transfer, TransferRequest
from gateway.forwarding import add_generic_handler, forwarding_handlers
from gateway.front_door import FrontDoor
from gateway.recovery import Recovery
from gateway.settlement import settlement_report
from gateway.transfers import TransferService
from service_kit import health, paging
from service_kit.errors import InvalidArgument
from service_kit.ratelimit import build_limiter
from service_kit.regions import RegionRegistry
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.topology import REGIONAL_SERVICES, RegionEntry
from service_kit.wire import from_timestamp, to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
HEALTH_TIMEOUT_S = 0.5
STATE_PREFIX = "CROSS_REGION_TRANSFER_STATE_"
log = logging.getLogger("carbon.gateway")


class GatewayServiceServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        registry: RegionRegistry,
        front_door: FrontDoor,
        transfers: TransferService,
        anywhere: RedeemAnywhereService | None = None,
    ) -> None:
        self._registry = registry
        self._front_door = front_door
        self._transfers = transfers
        self._anywhere = anywhere or RedeemAnywhereService(transfers)
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="region-health")

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        return self._front_door.caller(context)

    def ListRegions(self, request: pb.ListRegionsRequest, context: grpc.ServicerContext) -> pb.ListRegionsResponse:
        self._caller(context)
        page_size = paging.page_size(request.page_size)
        codes = [code for code in self._registry.sorted_codes() if code > request.page_token]
        page = [self._registry.regions[code] for code in codes[:page_size]]
        states = list(self._probe_pool.map(_region_health, page))
        next_token = page[-1].region_code if len(codes) > page_size else ""
        return pb.ListRegionsResponse(
            regions=[_region_message(entry, state) for entry, state in zip(page, states, strict=True)],
            next_page_token=next_token,
        )

    def CreateCrossRegionTransfer(
        self, request: pb.CreateCrossRegionTransferRequest, context: grpc.ServicerContext
    ) -> pb.CreateCrossRegionTransferResponse:
        caller = self._caller(context)
        transfer = self._transfers.create(
            caller,
            TransferRequest(request.transfer_id, request.from_account, request.to_account, request.amount_points),
        )
        return pb.CreateCrossRegionTransferResponse(transfer=transfer_message(transfer))

    def GetCrossRegionTransfer(
        self, request: pb.GetCrossRegionTransferRequest, context: grpc.ServicerContext
    ) -> pb.GetCrossRegionTransferResponse:
        transfer = self._transfers.get(self._caller(context), request.transfer_id)
        return pb.GetCrossRegionTransferResponse(transfer=transfer_message(transfer))

    def ListCrossRegionTransfers(
        self, request: pb.ListCrossRegionTransfersRequest, context: grpc.ServicerContext
    ) -> pb.ListCrossRegionTransfersResponse:
        caller = self._caller(context)
        page_size = paging.page_size(request.page_size)
        state = None
        if request.state:
            state = State(pb.CrossRegionTransferState.Name(request.state).removeprefix(STATE_PREFIX))
        page, next_token = self._transfers.list(caller, request.account_number, state, page_size, request.page_token)
        return pb.ListCrossRegionTransfersResponse(
            transfers=[transfer_message(transfer) for transfer in page], next_page_token=next_token
        )

    def RedeemAnywhere(
        self, request: pb.RedeemAnywhereRequest, context: grpc.ServicerContext
    ) -> pb.RedeemAnywhereResponse:
        caller = self._caller(context)
        item, transfer = self._anywhere.redeem(
            caller,
            AnywhereRequest(
                request.request_id,
                request.source_account,
                request.target_account,
                request.reward_id,
                request.quantity or 1,
            ),
        )
        return pb.RedeemAnywhereResponse(
            transfer=transfer_message(transfer), redemption_id=item.redemption_id, voucher_codes=item.voucher_codes
        )

    def GetSettlementReport(
        self, request: pb.GetSettlementReportRequest, context: grpc.ServicerContext
    ) -> pb.GetSettlementReportResponse:
        self._caller(context)
        if not request.HasField("period_start"):
            raise InvalidArgument("period_start", "is required")
        if not request.HasField("period_end"):
            raise InvalidArgument("period_end", "is required")
        report = settlement_report(
            self._transfers.clients,
            from_timestamp(request.period_start),
            from_timestamp(request.period_end),
            deadline_s(context, self._transfers.timing.call_timeout.total_seconds()),
        )
        return pb.GetSettlementReportResponse(
            gross=[_position(position) for position in report.gross],
            net=[_position(position) for position in report.net],
            clearing_balanced=report.clearing_balanced,
        )

    def GetDirectoryEntry(
        self, request: pb.GetDirectoryEntryRequest, context: grpc.ServicerContext
    ) -> pb.GetDirectoryEntryResponse:
        accounts = directory_entry(
            self._transfers.clients,
            self._caller(context),
            request.account_number,
            deadline_s(context, self._transfers.timing.call_timeout.total_seconds()),
        )
        return pb.GetDirectoryEntryResponse(
            accounts=[
                pb.DirectoryAccount(
                    account_number=account.account_number,
                    region_code=account.region_code,
                    available_points=account.available_points,
                    held_points=account.held_points,
                    error_reason=account.error_reason,
                )
                for account in accounts
            ],
            total_available_points=sum(account.available_points for account in accounts),
        )


def _position(position: Position) -> pb.SettlementPosition:
    return pb.SettlementPosition(
        debtor_region=position.debtor_region,
        creditor_region=position.creditor_region,
        points=position.points,
        amount_cents=position.amount_cents,
    )


def transfer_message(transfer: Transfer) -> pb.CrossRegionTransfer:
    return pb.CrossRegionTransfer(
        transfer_id=transfer.transfer_id,
        from_account=transfer.request.from_account,
        to_account=transfer.request.to_account,
        amount_points=transfer.request.amount_points,
        state=pb.CrossRegionTransferState.Value(STATE_PREFIX + transfer.state.value),
        failure_reason=transfer.failure_reason,
        created_at=to_timestamp(transfer.created_at),
        expires_at=to_timestamp(transfer.expires_at),
        finished_at=to_timestamp(transfer.finished_at) if transfer.finished_at else None,
    )


def _region_health(entry: RegionEntry) -> str:
    """SERVING when all four of the region's services are; NOT_SERVING when any answers otherwise."""
    states = [
        health.check(getattr(entry, f"{service.removesuffix('_svc')}_address"), timeout_s=HEALTH_TIMEOUT_S)
        for service in REGIONAL_SERVICES
    ]
    return "SERVING" if all(state == "SERVING" for state in states) else "NOT_SERVING"


def _region_message(entry: RegionEntry, state: str) -> pb.Region:
    return pb.Region(
        region_code=entry.region_code,
        name_en=entry.name_en,
        name_zh=entry.name_zh,
        identity_address=entry.identity_address,
        ingest_address=entry.ingest_address,
        ledger_address=entry.ledger_address,
        rewards_address=entry.rewards_address,
        health=state,
    )


def load_registry(settings: Settings) -> RegionRegistry:
    path = settings.extra.get("CARBON_REGISTRY_FILE", "")
    if not path:
        return RegionRegistry({})
    return RegionRegistry.load(Path(path))


def load_config(settings: Settings) -> GatewayConfig:
    path = settings.extra.get("CARBON_GATEWAY_CONFIG", "")
    if not path:
        log.warning("no CARBON_GATEWAY_CONFIG: the gateway is open, every caller acts as the national operator")
        return GatewayConfig()
    return GatewayConfig.load(Path(path))


def _ms(settings: Settings, name: str, default_ms: int) -> timedelta:
    raw = settings.extra.get(name, "")
    return timedelta(milliseconds=int(raw) if raw else default_ms)


def build_transfers(
    settings: Settings, engine: Engine, registry: RegionRegistry, config: GatewayConfig
) -> TransferService:
    timing = Timing(
        transfer_life=_ms(settings, "CARBON_GATEWAY_TRANSFER_LIFE_MS", 60_000),
        call_timeout=_ms(settings, "CARBON_GATEWAY_CALL_TIMEOUT_MS", 5_000),
        margin=_ms(settings, "CARBON_GATEWAY_MARGIN_MS", 2_000),
    )
    return TransferService(
        engine,
        RegionClients(registry, settings),
        config,
        timing,
        crash_at=settings.extra.get("CARBON_TEST_CRASH_AT", ""),
        retry_max=_ms(settings, "CARBON_GATEWAY_RETRY_MAX_MS", 30_000),
    )


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    registry = load_registry(settings)
    config = load_config(settings)
    transfers = build_transfers(settings, engine, registry, config)
    anywhere = RedeemAnywhereService(transfers)
    recovery = Recovery(transfers, anywhere)
    interval = _ms(settings, "CARBON_GATEWAY_RECOVERY_INTERVAL_MS", 1_000)
    if interval > timedelta(0):
        recovery.start(interval.total_seconds())
    front_door = FrontDoor(
        config, build_limiter(settings.redis_url, settings.extra.get("CARBON_REDIS_PREFIX", "carbon:gateway:"))
    )
    servicer = GatewayServiceServicer(registry, front_door, transfers, anywhere)
    forwarding = [
        Registration(add_generic_handler, handler, name)
        for name, handler in forwarding_handlers(front_door, transfers.clients, transfers.timing).items()
    ]
    return [
        *forwarding,
        Registration(
            gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server,
            servicer,
            SERVICE_NAME,
            on_stop=recovery.stop,
        ),
    ]
