"""carbon.rewards.v1 messages <-> rewards_svc's domain values."""

from __future__ import annotations

from carbon.rewards.v1 import rewards_service_pb2 as pb
from rewards_svc.domain.catalog import UPDATABLE_FIELDS, Recommendation, Reward
from rewards_svc.domain.charity import CharityProject, Donation
from rewards_svc.domain.redemption import Redemption
from rewards_svc.domain.vouchers import Voucher, VoucherState, visible_state
from service_kit import paging
from service_kit.validation import mask_paths
from service_kit.wire import optional_moment, to_timestamp


def update_mask(request: pb.UpdateRewardRequest) -> list[str]:
    """UpdateRewardRequest.update_mask checked at the edge: Reward fields that may change, each named once."""
    return mask_paths(request.update_mask, UPDATABLE_FIELDS)


def category_name(value: int) -> str:
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
        category=category_name(message.category),
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


def voucher_states(state: int) -> list[str]:
    if state == pb.VOUCHER_STATE_UNSPECIFIED:
        return []
    name = pb.VoucherState.Name(state).removeprefix("VOUCHER_STATE_")  # type: ignore[arg-type]
    return [VoucherState.CANCELLED, VoucherState.CANCELLING] if name == VoucherState.CANCELLED else [name]


def voucher_cursor(token: str) -> int:
    """ListVouchersRequest.page_token: the position after which the page starts (0: the first page)."""
    return paging.decode_int(token, "vouchers") or 0


def voucher_token(after: int) -> str:
    return paging.encode_token("vouchers", after) if after else ""


def reward_cursor(token: str) -> str:
    """ListRewardsRequest.page_token: the reward id after which the page starts ("" for the first page)."""
    return paging.decode_text(token, "rewards") or ""


def reward_token(last_id: str) -> str:
    return paging.encode_token("rewards", last_id) if last_id else ""


def recommendations_message(
    available_points: int, recommendations: list[Recommendation]
) -> pb.RecommendRewardsResponse:
    return pb.RecommendRewardsResponse(
        available_points=available_points,
        recommendations=[
            pb.Recommendation(
                reward=reward_message(item.reward), affordable=item.affordable, missing_points=item.missing_points
            )
            for item in recommendations
        ],
    )


def donation_message(donation: Donation) -> pb.DonateResponse:
    return pb.DonateResponse(
        donation_id=donation.donation_id, project=project_message(donation.project), units=donation.units
    )
