"""Which campaigns fit a resident, on which facts, in which order (pure functions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from incentives_svc.domain.campaigns import (
    Campaign,
    CampaignSpec,
    Scope,
    TargetKind,
    TargetRule,
    bonus_for,
    check_spec,
)
from incentives_svc.domain.offers import facts_for, offer_id_for, offers_for
from incentives_svc.domain.profiles import ObservedEvent, fold
from service_kit.errors import InvalidArgument

NOW = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
ACCOUNT = "1100001234567897"


def campaign(kind: TargetKind, campaign_id: str = "c1", bonus: int = 50, **rule: int) -> Campaign:
    spec = CampaignSpec(
        name=campaign_id,
        behaviour="transit_trip",
        bonus_points=bonus,
        bonus_percent=0,
        target=TargetRule(kind, **rule),
        starts_at=NOW - timedelta(days=30),
        ends_at=NOW + timedelta(days=30),
        budget_points=1000,
        scope=Scope.REGIONAL,
    )
    return Campaign(campaign_id, spec, NOW, funded=True)


def test_without_a_profile_only_untargeted_campaigns_fit() -> None:
    campaigns = [campaign(kind, kind.name.lower(), days=7, weekdays=3) for kind in TargetKind]
    offers = offers_for(ACCOUNT, campaigns, None, NOW)
    assert [o.campaign.campaign_id for o in offers] == ["everyone"]
    assert offers[0].explanation.facts == ()


def test_lapsed_holds_only_after_the_lapse_and_names_the_last_day() -> None:
    profile = fold(None, [ObservedEvent("transit_trip", NOW - timedelta(days=9))])
    lapsed = campaign(TargetKind.LAPSED, days=7)
    facts = facts_for(lapsed, profile, NOW.date())
    assert facts is not None and facts[0].text == "You last did transit_trip on 2026-03-11, 9 days ago."
    assert (
        facts_for(
            replace(lapsed, spec=replace(lapsed.spec, target=TargetRule(TargetKind.LAPSED, 10))), profile, NOW.date()
        )
        is None
    )


def test_targeted_offers_come_first_then_larger_bonuses() -> None:
    profile = fold(None, [ObservedEvent("bike_km", NOW - timedelta(days=1))])
    campaigns = [
        campaign(TargetKind.EVERYONE, "everyone-big", bonus=500),
        campaign(TargetKind.NEVER_TRIED, "never-small", bonus=10),
        campaign(TargetKind.NEVER_TRIED, "never-big", bonus=80),
    ]
    assert [o.campaign.campaign_id for o in offers_for(ACCOUNT, campaigns, profile, NOW)] == [
        "never-big",
        "never-small",
        "everyone-big",
    ]


def test_spent_or_finished_campaigns_are_offered_only_to_who_accepted_them() -> None:
    spent = replace(campaign(TargetKind.EVERYONE), exhausted=True)
    assert offers_for(ACCOUNT, [spent], None, NOW) == []
    accepted = frozenset({offer_id_for("c1", ACCOUNT)})
    assert [o.offer_id for o in offers_for(ACCOUNT, [spent], None, NOW, accepted)] == [offer_id_for("c1", ACCOUNT)]


def test_offer_ids_differ_per_resident_and_hide_the_account() -> None:
    assert offer_id_for("c1", ACCOUNT) != offer_id_for("c1", "1100001234567889")
    assert ACCOUNT not in offer_id_for("c1", ACCOUNT)


def test_bonuses_are_fixed_or_a_percentage_rounded_down() -> None:
    fixed = campaign(TargetKind.EVERYONE).spec
    assert bonus_for(fixed, 7) == 50
    assert bonus_for(replace(fixed, bonus_points=0, bonus_percent=150), 7) == 10


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "campaign.name"),
        ({"bonus_points": 0}, "campaign.bonus_points"),
        ({"bonus_percent": 20}, "campaign.bonus_points"),
        ({"budget_points": 0}, "campaign.budget_points"),
        ({"ends_at": NOW - timedelta(days=31)}, "campaign.ends_at"),
        ({"target": TargetRule(TargetKind.LAPSED, 0)}, "campaign.target.days"),
        ({"target": TargetRule(TargetKind.WEEKDAY_REGULAR, 0, 21)}, "campaign.target.weekdays"),
    ],
)
def test_a_bad_campaign_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_spec(replace(campaign(TargetKind.EVERYONE).spec, **change))  # type: ignore[arg-type]
    assert refused.value.field == field
