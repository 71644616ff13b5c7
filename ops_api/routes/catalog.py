"""The benefits catalog of a region: list, create, change and retire rewards (rewards_svc)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import Field

from carbon.rewards.v1 import rewards_service_pb2 as rpb
from ops_api.domain.requests import idempotency_key
from ops_api.domain.staff import Role
from ops_api.routes.common import Body, Json, PageSize, PageToken, RegionCode, enum_name, region_for
from ops_api.routes.dependencies import Ctx, CurrentStaff, RequestId
from ops_api.schemas import envelope, page
from ops_api.service.audit import audited
from ops_api.wire import timestamp, to_json

router = APIRouter(prefix="/v1/regions/{region_code}/rewards", tags=["catalog"])

RewardResponse = envelope("RewardResponse", "One reward.", reward=rpb.Reward)
RewardPage = page("RewardPage", "rewards", rpb.Reward, "The region's rewards.")
RewardId = Annotated[str, Path(min_length=1, max_length=128)]


class RewardCategory(StrEnum):
    """carbon.rewards.v1.RewardCategory by its full name, as responses show it."""

    PRACTICAL = "REWARD_CATEGORY_PRACTICAL"
    CULTURE_TOURISM = "REWARD_CATEGORY_CULTURE_TOURISM"
    CHARITY = "REWARD_CATEGORY_CHARITY"


Category = Annotated[RewardCategory, enum_name("REWARD_CATEGORY_")]


class RewardBody(Body):
    reward_id: str = Field(min_length=1, max_length=128)
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(default="", max_length=200)
    category: Category
    price_points: int = Field(ge=1, le=10_000_000)
    face_value_cents: int = Field(default=0, ge=0, le=100_000_000)
    provider: str = Field(min_length=1, max_length=200)
    region_codes: list[Annotated[str, Field(pattern=r"^[0-9]{6}$")]] = Field(default_factory=list, max_length=50)
    stock: int = Field(default=-1, ge=-1, le=1_000_000_000, description="-1: unlimited")
    limit_per_day: int = Field(default=0, ge=0, le=1000)
    limit_per_month: int = Field(default=0, ge=0, le=10_000)
    limit_lifetime: int = Field(default=0, ge=0, le=100_000)
    available_from: datetime | None = None
    available_until: datetime | None = None
    voucher_lifetime_days: int = Field(default=30, ge=1, le=3660)
    terms: str = Field(default="", max_length=2000)
    divisible: bool = False


def reward_message(body: RewardBody) -> rpb.Reward:
    reward = rpb.Reward(
        reward_id=body.reward_id,
        name_en=body.name_en,
        name_zh=body.name_zh,
        category=rpb.RewardCategory.Value(body.category.value),
        price_points=body.price_points,
        face_value_cents=body.face_value_cents,
        provider=body.provider,
        region_codes=body.region_codes,
        stock=body.stock,
        limit_per_day=body.limit_per_day,
        limit_per_month=body.limit_per_month,
        limit_lifetime=body.limit_lifetime,
        voucher_lifetime_days=body.voucher_lifetime_days,
        terms=body.terms,
        divisible=body.divisible,
    )
    if body.available_from:
        reward.available_from.CopyFrom(timestamp(body.available_from))
    if body.available_until:
        reward.available_until.CopyFrom(timestamp(body.available_until))
    return reward


@router.get("", summary="The region's rewards", response_model=RewardPage)
def list_rewards(
    context: Ctx,
    staff: CurrentStaff,
    region_code: RegionCode,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    category: Category | None = None,
    include_retired: bool = False,
) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.rewards(region)
    request = rpb.ListRewardsRequest(
        region_code=region_code,
        category=rpb.RewardCategory.Value(category.value) if category else 0,  # type: ignore[arg-type]
        include_retired=include_retired,
        page_size=page_size,
        page_token=page_token,
    )
    response = context.regions.call("rewards", stub.ListRewards, request)
    return {"rewards": [to_json(r) for r in response.rewards], "next_page_token": response.next_page_token}


@router.get("/{reward_id}", summary="One reward", response_model=RewardResponse)
def get_reward(context: Ctx, staff: CurrentStaff, region_code: RegionCode, reward_id: RewardId) -> Json:
    region = region_for(context, staff, region_code)
    stub = context.regions.rewards(region)
    response = context.regions.call("rewards", stub.GetReward, rpb.GetRewardRequest(reward_id=reward_id))
    return {"reward": to_json(response.reward)}


@router.post("", status_code=201, summary="Add a reward to the catalog", response_model=RewardResponse)
def create_reward(context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, body: RewardBody) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.rewards(region)
    request = rpb.CreateRewardRequest(request_id=idempotency_key(staff, rid), reward=reward_message(body))

    def run() -> Json:
        return {"reward": to_json(context.regions.call("rewards", stub.CreateReward, request).reward)}

    target = f"{region_code}/reward:{body.reward_id}"
    return audited(context, staff, rid, "reward.create", target, run, details=body.model_dump(mode="json"))


class RewardUpdateBody(Body):
    price_points: int | None = Field(default=None, ge=1, le=10_000_000)
    stock: int | None = Field(default=None, ge=-1, le=1_000_000_000)
    limit_per_day: int | None = Field(default=None, ge=0, le=1000)
    limit_per_month: int | None = Field(default=None, ge=0, le=10_000)
    limit_lifetime: int | None = Field(default=None, ge=0, le=100_000)
    name_en: str | None = Field(default=None, min_length=1, max_length=200)
    name_zh: str | None = Field(default=None, max_length=200)
    terms: str | None = Field(default=None, max_length=2000)


@router.patch(
    "/{reward_id}",
    summary="Change a reward (a new price applies to new redemptions only)",
    response_model=RewardResponse,
)
def update_reward(
    context: Ctx,
    staff: CurrentStaff,
    rid: RequestId,
    region_code: RegionCode,
    reward_id: RewardId,
    body: RewardUpdateBody,
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    changes = body.model_dump(exclude_none=True)
    reward = rpb.Reward(reward_id=reward_id, **changes)
    request = rpb.UpdateRewardRequest(
        request_id=idempotency_key(staff, rid), reward=reward, update_mask=sorted(changes)
    )
    stub = context.regions.rewards(region)

    def run() -> Json:
        return {"reward": to_json(context.regions.call("rewards", stub.UpdateReward, request).reward)}

    return audited(context, staff, rid, "reward.update", f"{region_code}/reward:{reward_id}", run, details=changes)


@router.post("/{reward_id}/retire", summary="Retire a reward: no new redemptions", response_model=RewardResponse)
def retire_reward(
    context: Ctx, staff: CurrentStaff, rid: RequestId, region_code: RegionCode, reward_id: RewardId
) -> Json:
    staff.require(Role.OPERATOR, Role.ADMIN)
    region = region_for(context, staff, region_code)
    stub = context.regions.rewards(region)
    request = rpb.RetireRewardRequest(request_id=idempotency_key(staff, rid), reward_id=reward_id)

    def run() -> Json:
        return {"reward": to_json(context.regions.call("rewards", stub.RetireReward, request).reward)}

    return audited(context, staff, rid, "reward.retire", f"{region_code}/reward:{reward_id}", run)
