"""Staff users, their bearer tokens, and what each role may do.

Roles, least to most:
  viewer           reads everything (accounts masked), changes nothing
  community_staff  bound to one region and one community centre: reads and serves that region's residents (open an
                   account at the centre, record community events, redeem at the counter); nothing elsewhere
  operator         national operations: all of the above in every region, catalog, sweeps, transfers, and requesting
                   or approving (someone else's) manual adjustments
  admin            everything an operator does, plus behaviour rules, partners and staff users
Tokens are "cops_" and 256 random bits; only their SHA-256 digest is kept (it cannot be reversed or guessed).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ops_api.problems import Problem, invalid

TOKEN_PREFIX = "cops_"
MAX_TOKEN_LENGTH = 200
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


def new_staff_role(user_id: str, role: str, region_code: str, centre_id: str) -> Role:
    """The role of a staff user about to be added; community staff must name their region and centre, others must
    not. Refusals are 422, as for a body that fails the schema."""
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
    return chosen


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def may_be_token(token: str) -> bool:
    """Worth looking up at all: a token of ours has the prefix and is short."""
    return token.startswith(TOKEN_PREFIX) and len(token) < MAX_TOKEN_LENGTH


def token_usable(now: datetime, expires_at: datetime | None, revoked_at: datetime | None, user_active: bool) -> bool:
    """A known token opens the API while it is neither revoked nor expired and its user is active."""
    return revoked_at is None and (expires_at is None or expires_at > now) and user_active
