"""gRPC servicer for carbon.rewards.v1.RewardsService: translates messages, holds no rules."""

from __future__ import annotations

import os

import grpc
from sqlalchemy import Engine

from carbon.rewards.v1 import rewards_service_pb2 as pb
from carbon.rewards.v1 import rewards_service_pb2_grpc as pb_grpc
from rewards_svc.catalog import load_catalog
from rewards_svc.domain import CharityProject, Redemption, Reward, Voucher, VoucherState, visible_state
from rewards_svc.ledger_client import GrpcLedger
from rewards_svc.redemption import Checkpoint, no_checkpoint
from rewards_svc.service import RecoveryLoop, RewardsService
from service_kit import db
from service_kit.errors import InvalidArgument
from service_kit.server import Registration
from service_kit.settings import Settings
from service_kit.wire import optional_moment, to_timestamp

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RewardsService"].full_name
CRASH_EXIT_CODE = 86


def _category(value: int) -> str:
    return "" if value == 0 else pb.RewardCategory.Name(value).removeprefix("REWARD_CATEGORY_")  # type: ignore[arg-type]


def reward_message(reward: Reward) -> pb.Reward:
    return pb.Reward(
        reward_id=reward.reward_id,
        name_en=reward.name_en,
        name_zh=reward.name_zh,
        category=pb.RewardCategory.Value(f"REWARD_CATEGORY_{reward.category}"),
        price_points=reward.price_points,
        face_value_cents=reward.face_value_cents,
        provider=reward.provider,
        region_codes=list(reward.region_codes),
        stock=reward.stock,
        limit_per_day=reward.limit_per_day,
        limit_per_month=reward.limit_per_month,
        limit_lifetime=reward.limit_lifetime,
        available_from=to_timestamp(reward.available_from),
        available_until=to_timestamp(reward.available_until),
        voucher_lifetime_days=reward.voucher_lifetime_days,
        retired=reward.retired,
        terms=reward.terms,
        divisible=reward.divisible,
    )


def reward_from_message(message: pb.Reward) -> Reward:
    return Reward(
        reward_id=message.reward_id,
        name_en=message.name_en,
        name_zh=message.name_zh,
        category=_category(message.category),
        price_points=message.price_points,
        face_value_cents=message.face_value_cents,
        provider=message.provider,
        region_codes=tuple(message.region_codes),
        stock=message.stock,
        limit_per_day=message.limit_per_day,
        limit_per_month=message.limit_per_month,
        limit_lifetime=message.limit_lifetime,
        available_from=optional_moment(message, "available_from"),
        available_until=optional_moment(message, "available_until"),
        voucher_lifetime_days=message.voucher_lifetime_days,
        divisible=message.divisible,
        retired=message.retired,
        terms=message.terms,
    )


def voucher_message(voucher: Voucher) -> pb.Voucher:
    return pb.Voucher(
        code=voucher.code,
        reward_id=voucher.reward_id,
        account_number=voucher.account_number,
        state=pb.VoucherState.Value(f"VOUCHER_STATE_{visible_state(voucher.state)}"),
        issued_at=to_timestamp(voucher.issued_at),
        expires_at=to_timestamp(voucher.expires_at),
        used_at=to_timestamp(voucher.used_at),
        terms=voucher.terms,
        price_points=voucher.price_points,
    )


def redemption_message(redemption: Redemption) -> pb.Redemption:
    return pb.Redemption(
        redemption_id=redemption.redemption_id,
        account_number=redemption.account_number,
        reward_id=redemption.reward_id,
        quantity=redemption.quantity,
        price_points=redemption.price_points,
        state=pb.RedemptionState.Value(f"REDEMPTION_STATE_{redemption.state}"),
        failure_reason=redemption.failure_reason,
        vouchers=[voucher_message(voucher) for voucher in redemption.vouchers],
        created_at=to_timestamp(redemption.created_at),
    )


def project_message(project: CharityProject) -> pb.CharityProject:
    return pb.CharityProject(
        project_id=project.project_id,
        name_en=project.name_en,
        name_zh=project.name_zh,
        points_per_unit=project.points_per_unit,
        impact_unit=project.impact_unit,
        units_region=project.units_region,
        donated_points_region=project.donated_points_region,
    )


def _voucher_states(state: int) -> list[str]:
    if state == pb.VOUCHER_STATE_UNSPECIFIED:
        return []
    name = pb.VoucherState.Name(state).removeprefix("VOUCHER_STATE_")  # type: ignore[arg-type]
    return [VoucherState.CANCELLED, VoucherState.CANCELLING] if name == VoucherState.CANCELLED else [name]


def _voucher_cursor(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidArgument("page_token", "not a token this service gave out")
    return int(token)


class RewardsServiceServicer(pb_grpc.RewardsServiceServicer):
    def __init__(self, service: RewardsService) -> None:
        self._service = service

    def ListRewards(self, request: pb.ListRewardsRequest, context: grpc.ServicerContext) -> pb.ListRewardsResponse:
        rewards, token = self._service.list_rewards(
            request.region_code,
            _category(request.category),
            request.include_retired,
            request.page_size,
            request.page_token,
        )
        return pb.ListRewardsResponse(rewards=[reward_message(r) for r in rewards], next_page_token=token)

    def GetReward(self, request: pb.GetRewardRequest, context: grpc.ServicerContext) -> pb.GetRewardResponse:
        return pb.GetRewardResponse(reward=reward_message(self._service.get_reward(request.reward_id)))

    def CreateReward(self, request: pb.CreateRewardRequest, context: grpc.ServicerContext) -> pb.CreateRewardResponse:
        reward = self._service.create_reward(request.request_id, reward_from_message(request.reward))
        return pb.CreateRewardResponse(reward=reward_message(reward))

    def UpdateReward(self, request: pb.UpdateRewardRequest, context: grpc.ServicerContext) -> pb.UpdateRewardResponse:
        reward = self._service.update_reward(
            request.request_id, reward_from_message(request.reward), list(request.update_mask)
        )
        return pb.UpdateRewardResponse(reward=reward_message(reward))

    def RetireReward(self, request: pb.RetireRewardRequest, context: grpc.ServicerContext) -> pb.RetireRewardResponse:
        reward = self._service.retire_reward(request.request_id, request.reward_id)
        return pb.RetireRewardResponse(reward=reward_message(reward))

    def Redeem(self, request: pb.RedeemRequest, context: grpc.ServicerContext) -> pb.RedeemResponse:
        redemption = self._service.redeem(
            request.request_id, request.account_number, request.reward_id, request.quantity or 1, request.region_code
        )
        return pb.RedeemResponse(redemption=redemption_message(redemption))

    def GetRedemption(
        self, request: pb.GetRedemptionRequest, context: grpc.ServicerContext
    ) -> pb.GetRedemptionResponse:
        redemption = self._service.get_redemption(request.redemption_id)
        return pb.GetRedemptionResponse(redemption=redemption_message(redemption))

    def ListVouchers(self, request: pb.ListVouchersRequest, context: grpc.ServicerContext) -> pb.ListVouchersResponse:
        vouchers, after = self._service.list_vouchers(
            request.account_number,
            _voucher_states(request.state),
            request.page_size,
            _voucher_cursor(request.page_token),
        )
        return pb.ListVouchersResponse(
            vouchers=[voucher_message(v) for v in vouchers], next_page_token=str(after) if after else ""
        )

    def UseVoucher(self, request: pb.UseVoucherRequest, context: grpc.ServicerContext) -> pb.UseVoucherResponse:
        voucher = self._service.use_voucher(request.request_id, request.code, request.merchant_id)
        return pb.UseVoucherResponse(voucher=voucher_message(voucher))

    def CancelVoucher(
        self, request: pb.CancelVoucherRequest, context: grpc.ServicerContext
    ) -> pb.CancelVoucherResponse:
        voucher, refunded = self._service.cancel_voucher(request.request_id, request.code, request.reason)
        return pb.CancelVoucherResponse(voucher=voucher_message(voucher), refunded_points=refunded)

    def ListCharityProjects(
        self, request: pb.ListCharityProjectsRequest, context: grpc.ServicerContext
    ) -> pb.ListCharityProjectsResponse:
        projects = self._service.list_projects()
        return pb.ListCharityProjectsResponse(projects=[project_message(p) for p in projects])

    def Donate(self, request: pb.DonateRequest, context: grpc.ServicerContext) -> pb.DonateResponse:
        donation = self._service.donate(
            request.request_id, request.account_number, request.project_id, request.amount_points
        )
        return pb.DonateResponse(
            donation_id=donation.donation_id, project=project_message(donation.project), units=donation.units
        )

    def RecommendRewards(
        self, request: pb.RecommendRewardsRequest, context: grpc.ServicerContext
    ) -> pb.RecommendRewardsResponse:
        available, recommendations = self._service.recommend(
            request.account_number, request.region_code, request.max_results
        )
        return pb.RecommendRewardsResponse(
            available_points=available,
            recommendations=[
                pb.Recommendation(
                    reward=reward_message(item.reward), affordable=item.affordable, missing_points=item.missing_points
                )
                for item in recommendations
            ],
        )


def crash_checkpoint(settings: Settings) -> Checkpoint:
    """Test hook (CARBON_TEST_CRASH_AT=<step>): the process dies at that step, as a kill -9 would leave it."""
    crash_at = settings.extra.get("CARBON_TEST_CRASH_AT", "")
    if not crash_at:
        return no_checkpoint

    def checkpoint(step: str) -> None:
        if step == crash_at:
            os._exit(CRASH_EXIT_CODE)

    return checkpoint


def build_service(settings: Settings, engine: Engine) -> RewardsService:
    service = RewardsService(
        engine,
        GrpcLedger.from_settings(settings),
        settings.region_code,
        hold_timeout_s=int(settings.extra.get("CARBON_HOLD_TIMEOUT_S", "600")),
        checkpoint=crash_checkpoint(settings),
    )
    service.seed(load_catalog())
    return service


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
    service = build_service(settings, pooled)
    recovery = RecoveryLoop(
        service,
        interval_s=float(settings.extra.get("CARBON_RECOVERY_INTERVAL_S", "30")),
        min_age_s=float(settings.extra.get("CARBON_RECOVERY_MIN_AGE_S", "60")),
    ).start()

    def stop() -> None:
        recovery.stop()
        if pooled is not engine:
            pooled.dispose()

    servicer = RewardsServiceServicer(service)
    return [Registration(pb_grpc.add_RewardsServiceServicer_to_server, servicer, SERVICE_NAME, on_stop=stop)]
