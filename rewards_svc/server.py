"""gRPC servicer for carbon.rewards.v1.RewardsService: translates messages (wire.py) and calls service/; and the
wiring of one region's rewards service from its settings."""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc
from sqlalchemy import Engine

from carbon.rewards.v1 import rewards_service_pb2 as pb
from carbon.rewards.v1 import rewards_service_pb2_grpc as pb_grpc
from rewards_svc.clients import GrpcLedger, Ledger
from rewards_svc.domain.seed_catalog import load_catalog
from rewards_svc.service.catalog import Catalog
from rewards_svc.service.charity import Charity
from rewards_svc.service.checkpoints import Checkpoint, no_checkpoint
from rewards_svc.service.recommendations import Recommendations
from rewards_svc.service.recovery import Recovery, RecoveryLoop
from rewards_svc.service.redemption import DEFAULT_HOLD_RETRY_WINDOW_S, Redemptions
from rewards_svc.service.vouchers import Vouchers
from rewards_svc.wire import (
    category_name,
    donation_message,
    project_message,
    recommendations_message,
    redemption_message,
    reward_cursor,
    reward_from_message,
    reward_message,
    reward_token,
    update_mask,
    voucher_cursor,
    voucher_message,
    voucher_states,
    voucher_token,
)
from service_kit import db
from service_kit.clock import Clock, system_clock
from service_kit.failures import idempotent
from service_kit.server import Registration
from service_kit.settings import Settings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RewardsService"].full_name
CRASH_EXIT_CODE = 86
DEFAULT_HOLD_TIMEOUT_S = 600


@dataclass(frozen=True)
class RewardsServices:
    """The use cases of one region's rewards, grouped as the servicer calls them."""

    region_code: str
    catalog: Catalog
    redemptions: Redemptions
    vouchers: Vouchers
    charity: Charity
    recommendations: Recommendations
    recovery: Recovery


class RewardsServiceServicer(pb_grpc.RewardsServiceServicer):
    def __init__(self, services: RewardsServices) -> None:
        self._catalog = services.catalog
        self._redemptions = services.redemptions
        self._vouchers = services.vouchers
        self._charity = services.charity
        self._recommendations = services.recommendations

    @idempotent
    def ListRewards(self, request: pb.ListRewardsRequest, context: grpc.ServicerContext) -> pb.ListRewardsResponse:
        rewards, token = self._catalog.list_rewards(
            request.region_code,
            category_name(request.category),
            request.include_retired,
            request.page_size,
            reward_cursor(request.page_token),
        )
        return pb.ListRewardsResponse(rewards=[reward_message(r) for r in rewards], next_page_token=reward_token(token))

    @idempotent
    def GetReward(self, request: pb.GetRewardRequest, context: grpc.ServicerContext) -> pb.GetRewardResponse:
        return pb.GetRewardResponse(reward=reward_message(self._catalog.get_reward(request.reward_id)))

    def CreateReward(self, request: pb.CreateRewardRequest, context: grpc.ServicerContext) -> pb.CreateRewardResponse:
        reward = self._catalog.create_reward(request.request_id, reward_from_message(request.reward))
        return pb.CreateRewardResponse(reward=reward_message(reward))

    def UpdateReward(self, request: pb.UpdateRewardRequest, context: grpc.ServicerContext) -> pb.UpdateRewardResponse:
        reward = self._catalog.update_reward(
            request.request_id, reward_from_message(request.reward), update_mask(request)
        )
        return pb.UpdateRewardResponse(reward=reward_message(reward))

    def RetireReward(self, request: pb.RetireRewardRequest, context: grpc.ServicerContext) -> pb.RetireRewardResponse:
        reward = self._catalog.retire_reward(request.request_id, request.reward_id)
        return pb.RetireRewardResponse(reward=reward_message(reward))

    def Redeem(self, request: pb.RedeemRequest, context: grpc.ServicerContext) -> pb.RedeemResponse:
        redemption = self._redemptions.redeem(
            request.request_id, request.account_number, request.reward_id, request.quantity or 1, request.region_code
        )
        return pb.RedeemResponse(redemption=redemption_message(redemption))

    @idempotent
    def GetRedemption(
        self, request: pb.GetRedemptionRequest, context: grpc.ServicerContext
    ) -> pb.GetRedemptionResponse:
        redemption = self._redemptions.get(request.redemption_id)
        return pb.GetRedemptionResponse(redemption=redemption_message(redemption))

    @idempotent
    def ListVouchers(self, request: pb.ListVouchersRequest, context: grpc.ServicerContext) -> pb.ListVouchersResponse:
        vouchers, after = self._vouchers.list_vouchers(
            request.account_number,
            voucher_states(request.state),
            request.page_size,
            voucher_cursor(request.page_token),
        )
        return pb.ListVouchersResponse(
            vouchers=[voucher_message(v) for v in vouchers], next_page_token=voucher_token(after)
        )

    def UseVoucher(self, request: pb.UseVoucherRequest, context: grpc.ServicerContext) -> pb.UseVoucherResponse:
        voucher = self._vouchers.use_voucher(request.request_id, request.code, request.merchant_id)
        return pb.UseVoucherResponse(voucher=voucher_message(voucher))

    def CancelVoucher(
        self, request: pb.CancelVoucherRequest, context: grpc.ServicerContext
    ) -> pb.CancelVoucherResponse:
        voucher, refunded = self._vouchers.cancel_voucher(request.request_id, request.code, request.reason)
        return pb.CancelVoucherResponse(voucher=voucher_message(voucher), refunded_points=refunded)

    @idempotent
    def ListCharityProjects(
        self, request: pb.ListCharityProjectsRequest, context: grpc.ServicerContext
    ) -> pb.ListCharityProjectsResponse:
        projects = self._charity.list_projects()
        return pb.ListCharityProjectsResponse(projects=[project_message(p) for p in projects])

    @idempotent
    def GetCharityFigures(
        self, request: pb.GetCharityFiguresRequest, context: grpc.ServicerContext
    ) -> pb.GetCharityFiguresResponse:
        figures = self._charity.month_figures(request.year, request.month)
        return pb.GetCharityFiguresResponse(
            year=request.year,
            month=request.month,
            projects=[
                pb.CharityProjectFigures(
                    project_id=project.project_id,
                    impact_unit=project.impact_unit,
                    points_per_unit=project.points_per_unit,
                    units=units,
                    donated_points=points,
                    units_total=project.units_region,
                    donated_points_total=project.donated_points_region,
                )
                for project, units, points in figures
            ],
        )

    def Donate(self, request: pb.DonateRequest, context: grpc.ServicerContext) -> pb.DonateResponse:
        donation = self._charity.donate(
            request.request_id, request.account_number, request.project_id, request.amount_points
        )
        return donation_message(donation)

    def RecommendRewards(
        self, request: pb.RecommendRewardsRequest, context: grpc.ServicerContext
    ) -> pb.RecommendRewardsResponse:
        available, recommendations = self._recommendations.recommend(
            request.account_number, request.region_code, request.max_results
        )
        return recommendations_message(available, recommendations)


def crash_checkpoint(settings: Settings) -> Checkpoint:
    """Test hook (CARBON_TEST_CRASH_AT=<step>): the process dies at that step, as a kill -9 would leave it."""
    crash_at = settings.extra.get("CARBON_TEST_CRASH_AT", "")
    if not crash_at:
        return no_checkpoint

    def checkpoint(step: str) -> None:
        if step == crash_at:
            os._exit(CRASH_EXIT_CODE)

    return checkpoint


def build_services(
    settings: Settings,
    engine: Engine,
    *,
    ledger: Ledger | None = None,
    clock: Clock = system_clock,
    checkpoint: Checkpoint | None = None,
) -> RewardsServices:
    """The use cases over `engine`, the region's ledger (from CARBON_LEDGER_ADDRESS unless given) and the seed
    catalog (entries the database lacks are added)."""
    ledger = ledger or GrpcLedger.from_settings(settings)
    checkpoint = checkpoint or crash_checkpoint(settings)
    hold_timeout_s = int(settings.extra.get("CARBON_HOLD_TIMEOUT_S", str(DEFAULT_HOLD_TIMEOUT_S)))
    region_code = settings.region_code
    retry_window_s = int(settings.extra.get("CARBON_HOLD_RETRY_WINDOW_S", str(DEFAULT_HOLD_RETRY_WINDOW_S)))
    # "0" while some ledger of the region is older than HoldRequest.commit_to_account: Hold and CommitHold apart.
    commit_at_once = settings.extra.get("CARBON_REDEEM_COMMIT_AT_ONCE", "1") != "0"
    # "0" while some ledger of the region has no HoldBatch (a ledger answering UNIMPLEMENTED turns it off anyway).
    batch_holds = settings.extra.get("CARBON_REDEEM_HOLD_BATCH", "1") != "0"
    redemptions = Redemptions(
        engine,
        ledger,
        region_code,
        clock,
        hold_timeout_s=hold_timeout_s,
        hold_retry_window_s=retry_window_s,
        checkpoint=checkpoint,
        commit_at_once=commit_at_once,
        batch_holds=batch_holds,
    )
    vouchers = Vouchers(engine, ledger, clock, checkpoint=checkpoint)
    charity = Charity(engine, ledger, region_code, clock)
    services = RewardsServices(
        region_code=region_code,
        catalog=Catalog(engine, clock),
        redemptions=redemptions,
        vouchers=vouchers,
        charity=charity,
        recommendations=Recommendations(engine, ledger, region_code, clock),
        recovery=Recovery(engine, clock, redemptions, vouchers, charity),
    )
    services.catalog.seed(load_catalog())
    return services


def pooled_engine(settings: Settings, engine: Engine) -> Engine:
    """An engine with a pooled connection for every worker thread (a redemption keeps one from start to end).

    The kit's runner already sizes its pool so; an in-process caller's smaller pool gets a sized engine beside it.
    SQLite serialises writers anyway and keeps the engine it was given.
    """
    size = getattr(engine.pool, "size", None)
    if engine.dialect.name == "sqlite" or (size is not None and size() >= settings.max_workers):
        return engine
    return db.make_engine(engine.url.render_as_string(hide_password=False), pool_size=settings.max_workers)


def registrations(settings: Settings, engine: Engine) -> list[Registration]:
    pooled = pooled_engine(settings, engine)
    services = build_services(settings, pooled)
    recovery = RecoveryLoop(
        services.recovery,
        interval_s=float(settings.extra.get("CARBON_RECOVERY_INTERVAL_S", "30")),
        min_age_s=float(settings.extra.get("CARBON_RECOVERY_MIN_AGE_S", "60")),
    ).start()

    def stop() -> None:
        recovery.stop()
        if pooled is not engine:
            pooled.dispose()

    servicer = RewardsServiceServicer(services)
    return [Registration(pb_grpc.add_RewardsServiceServicer_to_server, servicer, SERVICE_NAME, on_stop=stop)]
