"""Protobuf <-> domain values of carbon.incentives.v1."""

from __future__ import annotations

from datetime import date, datetime

from carbon.incentives.v1 import incentives_service_pb2 as pb
from incentives_svc.domain.campaigns import Campaign, CampaignSpec, Scope, TargetKind, TargetRule
from incentives_svc.domain.offers import Explanation
from incentives_svc.domain.profiles import Profile
from incentives_svc.service.offers import OfferView
from service_kit.errors import InvalidArgument
from service_kit.wire import from_timestamp, to_timestamp


def spec_from(message: pb.Campaign) -> CampaignSpec:
    if message.target.kind not in {int(kind) for kind in TargetKind}:
        raise InvalidArgument("campaign.target.kind", "must be one of EVERYONE, LAPSED, NEVER_TRIED, WEEKDAY_REGULAR")
    for name in ("starts_at", "ends_at"):
        if not message.HasField(name):
            raise InvalidArgument(f"campaign.{name}", "is required")
    if message.scope not in (0, *(int(scope) for scope in Scope)):
        raise InvalidArgument("campaign.scope", "is not a known scope")
    return CampaignSpec(
        name=message.name,
        behaviour=message.behaviour,
        bonus_points=message.bonus_points,
        bonus_percent=message.bonus_percent,
        target=TargetRule(TargetKind(message.target.kind), message.target.days, message.target.weekdays),
        starts_at=from_timestamp(message.starts_at),
        ends_at=from_timestamp(message.ends_at),
        budget_points=message.budget_points,
        scope=Scope(message.scope or Scope.REGIONAL),
    )


def campaign_message(campaign: Campaign) -> pb.Campaign:
    spec = campaign.spec
    return pb.Campaign(
        campaign_id=campaign.campaign_id,
        name=spec.name,
        behaviour=spec.behaviour,
        bonus_points=spec.bonus_points,
        bonus_percent=spec.bonus_percent,
        target=pb.TargetRule(kind=int(spec.target.kind), days=spec.target.days, weekdays=spec.target.weekdays),  # type: ignore[arg-type]
        starts_at=to_timestamp(spec.starts_at),
        ends_at=to_timestamp(spec.ends_at),
        budget_points=spec.budget_points,
        scope=int(spec.scope),  # type: ignore[arg-type]
        budget_account=campaign.budget_account,
        paid_points=campaign.paid_points,
        bonuses_paid=campaign.bonuses_paid,
        funded=campaign.funded,
        exhausted=campaign.exhausted,
        returned_points=campaign.returned_points or 0,
        closed=campaign.returned_points is not None,
    )


def explanation_message(explanation: Explanation) -> pb.Explanation:
    return pb.Explanation(
        facts=[pb.Fact(kind=fact.kind, text=fact.text) for fact in explanation.facts],
        rule=explanation.rule,
        summary=explanation.summary,
    )


def offer_message(view: OfferView) -> pb.Offer:
    offer, spec = view.offer, view.offer.campaign.spec
    message = pb.Offer(
        offer_id=offer.offer_id,
        campaign_id=offer.campaign.campaign_id,
        campaign_name=spec.name,
        behaviour=spec.behaviour,
        headline=offer.headline,
        bonus_points=spec.bonus_points,
        bonus_percent=spec.bonus_percent,
        ends_at=to_timestamp(spec.ends_at),
        targeted=offer.targeted,
        explanation=explanation_message(offer.explanation),
        state=int(view.state),  # type: ignore[arg-type]
    )
    stored = view.stored
    if stored is not None and stored.event_ref:
        message.fulfilled_by_event = stored.event_ref
        message.bonus_transfer_id = stored.transfer_id
        message.paid_points = stored.bonus_points if stored.state == "FULFILLED" else 0
    return message


def profile_message(profile: Profile, updated_at: datetime, today: date) -> pb.GetProfileResponse:
    idle, _ = profile.idle_days(today)
    habits = [
        pb.BehaviourHabit(
            behaviour=name,
            events=habit.events,
            last_day=habit.last_day.isoformat(),
            recent_weekdays=profile.recent_weekdays(name, today),
        )
        for name, habit in sorted(profile.habits.items())
    ]
    return pb.GetProfileResponse(
        habits=habits,
        idle_days_recent=idle,
        typical_hour=profile.typical_hour(),
        updated_at=to_timestamp(updated_at),
    )
