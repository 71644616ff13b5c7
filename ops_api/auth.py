"""Staff users, bearer tokens (stored as SHA-256 digests) and what each role may do.

Roles, least to most:
  viewer           reads everything (accounts masked), changes nothing
  community_staff  bound to one region and one community centre: reads and serves that region's residents (open an
                   account at the centre, record community events, redeem at the counter); nothing elsewhere
  operator         national operations: all of the above in every region, catalog, sweeps, transfers, and requesting
                   or approving (someone else's) manual adjustments
  admin            everything an operator does, plus behaviour rules, partners and staff users
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, insert, select, update

from ops_api.problems import Problem, invalid
from ops_api.store import staff_tokens, staff_users

TOKEN_PREFIX = "cops_"
USER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
CENTRE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Role(StrEnum):
    VIEWER = "viewer"
    COMMUNITY_STAFF = "community_staff"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Staff:
    user_id: str
    role: Role
    region_code: str = ""
    centre_id: str = ""
    token_id: str = ""

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Problem(
                403,
                "ROLE_NOT_ALLOWED",
                f"role {self.role.value} may not do this (needs {', '.join(r.value for r in roles)})",
                {"role": self.role.value},
            )

    def require_region(self, region_code: str, field: str = "account_number") -> None:
        """A community staff member acts only for residents of their own region."""
        if self.role is Role.COMMUNITY_STAFF and region_code != self.region_code:
            raise Problem(
                403,
                "STAFF_REGION_MISMATCH",
                f"{field}: staff of region {self.region_code} may not act for region {region_code}",
                {"field": field, "staff_region": self.region_code, "region": region_code},
            )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
    if not USER_ID.match(user_id):
        raise invalid("user_id", "1-32 characters: lower-case letters, digits, '.', '_' or '-'", 422)
    try:
        chosen = Role(role)
    except ValueError:
        raise invalid("role", f"must be one of {', '.join(r.value for r in Role)}", 422) from None
    if chosen is Role.COMMUNITY_STAFF:
        if not (len(region_code) == 6 and region_code.isdigit()):
            raise invalid("region_code", "community staff need a 6-digit region code", 422)
        if not CENTRE_ID.match(centre_id):
            raise invalid("centre_id", "community staff need a centre id (letters, digits, '.', '_', '-')", 422)
    elif region_code or centre_id:
        raise invalid("region_code", "only community staff are bound to a region and centre", 422)
    with engine.begin() as conn:
        if conn.execute(select(staff_users.c.user_id).where(staff_users.c.user_id == user_id)).first():
            raise Problem(409, "STAFF_USER_EXISTS", f"staff user {user_id} exists", {"user_id": user_id})
        conn.execute(
            insert(staff_users).values(
                user_id=user_id,
                display_name=display_name or user_id,
                role=chosen.value,
                region_code=region_code,
                centre_id=centre_id,
                active=1,
                created_at=now,
                created_by=created_by,
            )
        )
    return Staff(user_id, chosen, region_code, centre_id)


def issue_token(
    engine: Engine, now: datetime, user_id: str, label: str = "", valid_for: timedelta | None = None
) -> tuple[str, str]:
    """A new bearer token for the user: (token_id, token). The token is shown once; only its digest is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = uuid.uuid4().hex
    with engine.begin() as conn:
        if not conn.execute(select(staff_users.c.user_id).where(staff_users.c.user_id == user_id)).first():
            raise Problem(404, "STAFF_USER_NOT_FOUND", f"no staff user {user_id}", {"user_id": user_id})
        conn.execute(
            insert(staff_tokens).values(
                token_id=token_id,
                user_id=user_id,
                token_sha256=token_digest(token),
                label=label[:100],
                created_at=now,
                expires_at=now + valid_for if valid_for else None,
            )
        )
    return token_id, token


def revoke_token(engine: Engine, now: datetime, token_id: str) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            update(staff_tokens)
            .where(staff_tokens.c.token_id == token_id, staff_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return bool(result.rowcount)


def authenticate(engine: Engine, now: datetime, token: str) -> Staff:
    row = None
    if token.startswith(TOKEN_PREFIX) and len(token) < 200:
        with engine.connect() as conn:
            row = conn.execute(
                select(staff_tokens, staff_users)
                .join(staff_users, staff_users.c.user_id == staff_tokens.c.user_id)
                .where(staff_tokens.c.token_sha256 == token_digest(token))
            ).first()
    if row is None:
        raise Problem(401, "TOKEN_INVALID", "the bearer token is not known", headers={"WWW-Authenticate": "Bearer"})
    m = row._mapping
    if m["revoked_at"] is not None or (m["expires_at"] is not None and m["expires_at"] <= now) or not m["active"]:
        raise Problem(
            401, "TOKEN_INVALID", "the bearer token is revoked or expired", headers={"WWW-Authenticate": "Bearer"}
        )
    return Staff(m["user_id"], Role(m["role"]), m["region_code"], m["centre_id"], m["token_id"])
