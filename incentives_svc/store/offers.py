"""Accepted offers as stored, from acceptance to their bonus."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from incentives_svc.store.tables import offers

ACCEPTED = "ACCEPTED"
PAYING = "PAYING"
FULFILLED = "FULFILLED"
BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"


@dataclass(frozen=True)
class StoredOffer:
    offer_id: str
    campaign_id: str
    account_number: str
    request_id: str
    state: str
    accepted_at: datetime
    event_ref: str
    occurred_at: datetime | None
    transfer_id: str
    bonus_points: int


def find(conn: Connection, offer_id: str) -> StoredOffer | None:
    row = conn.execute(select(offers).where(offers.c.offer_id == offer_id)).first()
    return None if row is None else _offer(row)


def find_by_request(conn: Connection, request_id: str) -> StoredOffer | None:
    row = conn.execute(select(offers).where(offers.c.request_id == request_id)).first()
    return None if row is None else _offer(row)


def of_account(conn: Connection, account_number: str) -> dict[str, StoredOffer]:
    rows = conn.execute(select(offers).where(offers.c.account_number == account_number)).all()
    return {row.offer_id: _offer(row) for row in rows}


def waiting(conn: Connection, account_numbers: Iterable[str]) -> list[StoredOffer]:
    """The ACCEPTED offers of these accounts."""
    numbers = list(account_numbers)
    if not numbers:
        return []
    query = select(offers).where(offers.c.account_number.in_(numbers), offers.c.state == ACCEPTED)
    return [_offer(row) for row in conn.execute(query.order_by(offers.c.accepted_at, offers.c.offer_id))]


def unpaid(conn: Connection, limit: int) -> list[StoredOffer]:
    """Offers whose bonus is owed to the ledger (PAYING), oldest first."""
    query = select(offers).where(offers.c.state == PAYING).order_by(offers.c.updated_at).limit(limit)
    return [_offer(row) for row in conn.execute(query)]


def owed_for(conn: Connection, campaign_id: str) -> bool:
    """Whether any of this campaign's bonuses is still owed to the ledger (PAYING)."""
    query = select(offers.c.offer_id).where(offers.c.campaign_id == campaign_id, offers.c.state == PAYING).limit(1)
    return conn.execute(query).first() is not None


def insert_accepted(
    conn: Connection, offer_id: str, campaign_id: str, account_number: str, request_id: str, now: datetime
) -> None:
    conn.execute(
        insert(offers).values(
            offer_id=offer_id,
            campaign_id=campaign_id,
            account_number=account_number,
            request_id=request_id,
            state=ACCEPTED,
            accepted_at=now,
            updated_at=now,
        )
    )


def claim(
    conn: Connection, offer_id: str, event_ref: str, occurred_at: datetime, transfer_id: str, bonus: int, now: datetime
) -> bool:
    """ACCEPTED -> PAYING for this event; False when the offer already left ACCEPTED (another event won)."""
    result = conn.execute(
        update(offers)
        .where(offers.c.offer_id == offer_id, offers.c.state == ACCEPTED)
        .values(
            state=PAYING,
            event_ref=event_ref,
            occurred_at=occurred_at,
            transfer_id=transfer_id,
            bonus_points=bonus,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


def settle(conn: Connection, offer_id: str, state: str, now: datetime) -> bool:
    """PAYING -> FULFILLED or BUDGET_EXHAUSTED; False when another worker settled it first."""
    result = conn.execute(
        update(offers)
        .where(offers.c.offer_id == offer_id, offers.c.state == PAYING)
        .values(state=state, updated_at=now)
    )
    return bool(result.rowcount)


def _offer(row: Any) -> StoredOffer:
    return StoredOffer(
        offer_id=row.offer_id,
        campaign_id=row.campaign_id,
        account_number=row.account_number,
        request_id=row.request_id,
        state=row.state,
        accepted_at=row.accepted_at,
        event_ref=row.event_ref,
        occurred_at=row.occurred_at,
        transfer_id=row.transfer_id,
        bonus_points=int(row.bonus_points),
    )
