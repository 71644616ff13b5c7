"""Queries on the binding audit: record events, read an account's, erase the personal part at closing, and a page
of an account's current bindings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from identity_svc.domain.bindings import BindingEvent, BindingEventKind
from identity_svc.store.tables import binding_events, channel_bindings

BINDING_KINDS = (int(BindingEventKind.OPENED), int(BindingEventKind.BOUND))


def insert_events(conn: Connection, events: Sequence[BindingEvent]) -> None:
    if not events:
        return
    conn.execute(insert(binding_events), [event_values(event) for event in events])


def event_values(event: BindingEvent) -> dict[str, Any]:
    """The row of one binding event."""
    return {
        "account_number": event.account_number,
        "kind": int(event.kind),
        "channel": int(event.channel),
        "platform": event.platform or None,
        "platform_user_id": event.platform_user_id or None,
        "community_centre_id": event.community_centre_id or None,
        "request_id": event.request_id or None,
        "caller_service": event.requester.service or None,
        "caller": event.requester.caller or None,
        "caller_platform": event.requester.platform or None,
        "staff_id": event.staff_id or None,
        "occurred_at": event.occurred_at,
    }


def events_of(conn: Connection, account_number: str) -> Sequence[Row[Any]]:
    """An account's binding events, oldest first."""
    query = select(binding_events).where(binding_events.c.account_number == account_number)
    return conn.execute(query.order_by(binding_events.c.id)).all()


def erase_platform_user_ids(conn: Connection, account_number: str) -> None:
    query = update(binding_events).where(binding_events.c.account_number == account_number)
    conn.execute(query.values(platform_user_id=None))


def binding_page(conn: Connection, account_number: str, offset: int, limit: int) -> Sequence[Row[Any]]:
    """Oldest first by (bound_at, platform, platform_user_id), from the offset-th."""
    order = (channel_bindings.c.bound_at, channel_bindings.c.platform, channel_bindings.c.platform_user_id)
    query = select(channel_bindings).where(channel_bindings.c.account_number == account_number).order_by(*order)
    return conn.execute(query.offset(offset).limit(limit)).all()


def latest_binders(
    conn: Connection, account_number: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Row[Any]]:
    """For each (platform, platform user id), the latest event that bound it to the account."""
    if not keys:
        return {}
    platforms = sorted({platform for platform, _ in keys})
    query = (
        select(binding_events)
        .where(
            binding_events.c.account_number == account_number,
            binding_events.c.kind.in_(BINDING_KINDS),
            binding_events.c.platform.in_(platforms),
        )
        .order_by(binding_events.c.id)
    )
    wanted = set(keys)
    found: dict[tuple[str, str], Row[Any]] = {}
    for row in conn.execute(query):
        key = (row.platform, row.platform_user_id)
        if key in wanted:
            found[key] = row
    return found
