"""Campaigns as stored, with what they have paid out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from incentives_svc.domain.campaigns import Campaign, CampaignSpec, Scope, TargetKind, TargetRule
from incentives_svc.store.tables import campaigns


def insert_campaign(conn: Connection, campaign: Campaign, request_id: str, fingerprint: str) -> None:
    spec = campaign.spec
    conn.execute(
        insert(campaigns).values(
            campaign_id=campaign.campaign_id,
            request_id=request_id,
            fingerprint=fingerprint,
            name=spec.name,
            behaviour=spec.behaviour,
            bonus_points=spec.bonus_points,
            bonus_percent=spec.bonus_percent,
            target_kind=int(spec.target.kind),
            target_days=spec.target.days,
            target_weekdays=spec.target.weekdays,
            starts_at=spec.starts_at,
            ends_at=spec.ends_at,
            budget_points=spec.budget_points,
            scope=int(spec.scope),
            funded=False,
            paid_points=0,
            bonuses_paid=0,
            exhausted=False,
            created_at=campaign.created_at,
        )
    )


def find_by_request(conn: Connection, request_id: str) -> tuple[Campaign, str] | None:
    """The campaign a request created and the fingerprint of what it asked for."""
    row = conn.execute(select(campaigns).where(campaigns.c.request_id == request_id)).first()
    return None if row is None else (_campaign(row), row.fingerprint)


def get(conn: Connection, campaign_id: str) -> Campaign | None:
    row = conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id)).first()
    return None if row is None else _campaign(row)


def all_campaigns(conn: Connection) -> list[Campaign]:
    rows = conn.execute(select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.campaign_id)).all()
    return [_campaign(row) for row in rows]


def mark_funded(conn: Connection, campaign_id: str) -> None:
    conn.execute(update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(funded=True))


def count_payment(conn: Connection, campaign_id: str, points: int) -> None:
    conn.execute(
        update(campaigns)
        .where(campaigns.c.campaign_id == campaign_id)
        .values(paid_points=campaigns.c.paid_points + points, bonuses_paid=campaigns.c.bonuses_paid + 1)
    )


def mark_exhausted(conn: Connection, campaign_id: str) -> None:
    conn.execute(update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(exhausted=True))


def due_to_close(conn: Connection, before: datetime, limit: int) -> list[Campaign]:
    """Funded campaigns whose window ended before `before` and whose remainder has not gone back yet."""
    query = (
        select(campaigns)
        .where(campaigns.c.funded.is_(True), campaigns.c.returned.is_(False), campaigns.c.ends_at < before)
        .order_by(campaigns.c.ends_at, campaigns.c.campaign_id)
        .limit(limit)
    )
    return [_campaign(row) for row in conn.execute(query)]


def remainder_to_return(conn: Connection, campaign_id: str, remainder: int) -> int:
    """The remainder this campaign returns: the one decided by the first closer, or `remainder` when this is it."""
    conn.execute(
        update(campaigns)
        .where(campaigns.c.campaign_id == campaign_id, campaigns.c.returning_points.is_(None))
        .values(returning_points=remainder)
    )
    decided = conn.execute(select(campaigns.c.returning_points).where(campaigns.c.campaign_id == campaign_id))
    return int(decided.scalar_one())


def forget_remainder(conn: Connection, campaign_id: str) -> None:
    conn.execute(
        update(campaigns)
        .where(campaigns.c.campaign_id == campaign_id, campaigns.c.returned.is_(False))
        .values(returning_points=None)
    )


def mark_returned(conn: Connection, campaign_id: str) -> None:
    conn.execute(update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(returned=True))


def _campaign(row: Any) -> Campaign:
    spec = CampaignSpec(
        name=row.name,
        behaviour=row.behaviour,
        bonus_points=int(row.bonus_points),
        bonus_percent=int(row.bonus_percent),
        target=TargetRule(TargetKind(row.target_kind), int(row.target_days), int(row.target_weekdays)),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        budget_points=int(row.budget_points),
        scope=Scope(row.scope),
    )
    return Campaign(
        campaign_id=row.campaign_id,
        spec=spec,
        created_at=row.created_at,
        funded=bool(row.funded),
        paid_points=int(row.paid_points),
        bonuses_paid=int(row.bonuses_paid),
        exhausted=bool(row.exhausted),
        returned_points=int(row.returning_points) if row.returned else None,
    )
