"""Staff users and their bearer tokens (stored as digests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ops_api.domain.staff import Role, Staff
from ops_api.store.tables import staff_tokens, staff_users


def user_exists(conn: Connection, user_id: str) -> bool:
    return conn.execute(select(staff_users.c.user_id).where(staff_users.c.user_id == user_id)).first() is not None


def insert_user(conn: Connection, staff: Staff, display_name: str, now: datetime, created_by: str) -> None:
    conn.execute(
        insert(staff_users).values(
            user_id=staff.user_id,
            display_name=display_name,
            role=staff.role.value,
            region_code=staff.region_code,
            centre_id=staff.centre_id,
            active=1,
            created_at=now,
            created_by=created_by,
        )
    )


def insert_token(
    conn: Connection, token_id: str, user_id: str, digest: str, label: str, now: datetime, expires_at: datetime | None
) -> None:
    conn.execute(
        insert(staff_tokens).values(
            token_id=token_id,
            user_id=user_id,
            token_sha256=digest,
            label=label,
            created_at=now,
            expires_at=expires_at,
        )
    )


def revoke_token(conn: Connection, token_id: str, now: datetime) -> bool:
    """False when there is no such token or it is revoked already."""
    result = conn.execute(
        update(staff_tokens)
        .where(staff_tokens.c.token_id == token_id, staff_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


@dataclass(frozen=True)
class TokenHolder:
    """A known token's staff member, and what decides whether the token still opens the API."""

    staff: Staff
    expires_at: datetime | None
    revoked_at: datetime | None
    user_active: bool


def token_holder(conn: Connection, digest: str) -> TokenHolder | None:
    """The token with this digest and its user, or None when no token has it."""
    row = conn.execute(
        select(staff_tokens, staff_users)
        .join(staff_users, staff_users.c.user_id == staff_tokens.c.user_id)
        .where(staff_tokens.c.token_sha256 == digest)
    ).first()
    if row is None:
        return None
    found = row._mapping
    return TokenHolder(
        staff=Staff(
            user_id=found["user_id"],
            role=Role(found["role"]),
            region_code=found["region_code"],
            centre_id=found["centre_id"],
            token_id=found["token_id"],
        ),
        expires_at=found["expires_at"],
        revoked_at=found["revoked_at"],
        user_active=bool(found["active"]),
    )


def users_page(conn: Connection, after_user_id: str, limit: int) -> list[dict[str, Any]]:
    """Staff users in user id order after `after_user_id`, every column."""
    query = select(staff_users).order_by(staff_users.c.user_id).limit(limit)
    if after_user_id:
        query = query.where(staff_users.c.user_id > after_user_id)
    return [dict(row._mapping) for row in conn.execute(query)]
