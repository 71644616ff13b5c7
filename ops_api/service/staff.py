"""Staff users and their bearer tokens: add a user, issue and revoke tokens, know the staff member behind a token.

The rules (roles, what a new user must name, when a token is usable) are ops_api.domain.staff.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from ops_api.domain.staff import Staff, may_be_token, new_staff_role, new_token, token_digest, token_usable
from ops_api.problems import Problem
from ops_api.store import staff as store

UNKNOWN_TOKEN = "the bearer token is not known"
UNUSABLE_TOKEN = "the bearer token is revoked or expired"


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str  # shown once; only its digest is kept


def create_user(
    engine: Engine,
    now: datetime,
    user_id: str,
    role: str,
    *,
    display_name: str = "",
    region_code: str = "",
    centre_id: str = "",
    created_by: str = "bootstrap",
) -> Staff:
    """Adds a staff user; community staff must name their region and centre, others must not."""
    chosen = new_staff_role(user_id, role, region_code, centre_id)
    staff = Staff(user_id=user_id, role=chosen, region_code=region_code, centre_id=centre_id)
    with engine.begin() as conn:
        if store.user_exists(conn, user_id):
            raise Problem(409, "STAFF_USER_EXISTS", f"staff user {user_id} exists", {"user_id": user_id})
        store.insert_user(conn, staff, display_name or user_id, now, created_by)
    return staff


def issue_token(
    engine: Engine, now: datetime, user_id: str, label: str = "", valid_for: timedelta | None = None
) -> IssuedToken:
    """A new bearer token for the user. The token is shown once; only its digest is kept."""
    issued = IssuedToken(token_id=uuid.uuid4().hex, token=new_token())
    with engine.begin() as conn:
        if not store.user_exists(conn, user_id):
            raise Problem(404, "STAFF_USER_NOT_FOUND", f"no staff user {user_id}", {"user_id": user_id})
        expires_at = now + valid_for if valid_for else None
        store.insert_token(conn, issued.token_id, user_id, token_digest(issued.token), label[:100], now, expires_at)
    return issued


def revoke_token(engine: Engine, now: datetime, token_id: str) -> bool:
    """False when there is no such token, or it was revoked before."""
    with engine.begin() as conn:
        return store.revoke_token(conn, token_id, now)


def authenticate(engine: Engine, now: datetime, token: str) -> Staff:
    """The staff member behind a bearer token; 401 TOKEN_INVALID when it is unknown, revoked or expired."""
    holder = None
    if may_be_token(token):
        with engine.connect() as conn:
            holder = store.token_holder(conn, token_digest(token))
    if holder is None:
        raise Problem(401, "TOKEN_INVALID", UNKNOWN_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    if not token_usable(now, holder.expires_at, holder.revoked_at, holder.user_active):
        raise Problem(401, "TOKEN_INVALID", UNUSABLE_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return holder.staff


def list_users(engine: Engine, page_size: int, page_token: str) -> tuple[list[dict[str, Any]], str]:
    """Staff users in user id order, every column (times in ISO format), and the next page's token ("" at the end)."""
    with engine.connect() as conn:
        rows = store.users_page(conn, page_token, page_size + 1)
    users = [{k: (v.isoformat() if k == "created_at" else v) for k, v in row.items()} for row in rows[:page_size]]
    return users, users[-1]["user_id"] if len(rows) > page_size else ""
