"""Habit profiles, refusals of personalisation and the event cursor as stored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from incentives_svc.domain.profiles import Profile, from_json, to_json
from incentives_svc.store.tables import cursors, personalisation_requests, profiles, refusals


def load(conn: Connection, account_numbers: Iterable[str]) -> dict[str, Profile]:
    numbers = list(account_numbers)
    if not numbers:
        return {}
    rows = conn.execute(select(profiles).where(profiles.c.account_number.in_(numbers))).all()
    return {row.account_number: from_json(row.profile) for row in rows}


def updated_at(conn: Connection, account_number: str) -> datetime | None:
    row = conn.execute(select(profiles.c.updated_at).where(profiles.c.account_number == account_number)).first()
    return None if row is None else row.updated_at


def save(conn: Connection, account_number: str, profile: Profile, existed: bool, now: datetime) -> None:
    values = {"profile": to_json(profile), "updated_at": now}
    if existed:
        conn.execute(update(profiles).where(profiles.c.account_number == account_number).values(**values))
    else:
        conn.execute(insert(profiles).values(account_number=account_number, **values))


def forget(conn: Connection, account_numbers: Iterable[str]) -> int:
    """Deletes the profiles; how many there were."""
    numbers = list(account_numbers)
    if not numbers:
        return 0
    return conn.execute(delete(profiles).where(profiles.c.account_number.in_(numbers))).rowcount


def refused(conn: Connection, account_numbers: Iterable[str]) -> set[str]:
    numbers = list(account_numbers)
    if not numbers:
        return set()
    rows = conn.execute(select(refusals.c.account_number).where(refusals.c.account_number.in_(numbers))).all()
    return {row.account_number for row in rows}


def set_refusal(conn: Connection, account_number: str, refuse: bool, now: datetime) -> None:
    conn.execute(delete(refusals).where(refusals.c.account_number == account_number))
    if refuse:
        conn.execute(insert(refusals).values(account_number=account_number, refused_at=now))


def find_request(conn: Connection, request_id: str) -> tuple[str, bool, bool] | None:
    """(account_number, enabled, profile_deleted) of a SetPersonalisation request seen before."""
    row = conn.execute(
        select(personalisation_requests).where(personalisation_requests.c.request_id == request_id)
    ).first()
    return None if row is None else (row.account_number, bool(row.enabled), bool(row.profile_deleted))


def record_request(
    conn: Connection, request_id: str, account_number: str, enabled: bool, deleted: bool, now: datetime
) -> None:
    conn.execute(
        insert(personalisation_requests).values(
            request_id=request_id,
            account_number=account_number,
            enabled=enabled,
            profile_deleted=deleted,
            created_at=now,
        )
    )


def cursor(conn: Connection, name: str) -> str:
    row = conn.execute(select(cursors.c.page_token).where(cursors.c.name == name)).first()
    return "" if row is None else str(row.page_token)


def advance_cursor(conn: Connection, name: str, expected: str, page_token: str) -> bool:
    """Moves the cursor from `expected` to `page_token`; False when another follower moved it first (the caller
    rolls back what it folded in, so no event is counted twice)."""
    moved = conn.execute(
        update(cursors).where(cursors.c.name == name, cursors.c.page_token == expected).values(page_token=page_token)
    )
    if moved.rowcount:
        return True
    if expected or conn.execute(select(cursors.c.name).where(cursors.c.name == name)).first() is not None:
        return False
    conn.execute(insert(cursors).values(name=name, page_token=page_token))  # the first page ever: a race is a conflict
    return True
