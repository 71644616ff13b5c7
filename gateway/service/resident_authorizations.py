"""Verifying a resident authorization: an EdDSA JWT whose key is the regions' public JWKS
(CARBON_RESIDENT_AUTH_JWKS_FILE, key id = the issuing identity service's SPIFFE ID), signed by the source account's
region, for the gateway, unexpired, and bound to the operation (gateway.domain.resident_authorizations)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jwt

from gateway.domain.resident_authorizations import AUDIENCE, FIELD, Operation, authorized_by, issuer_of
from service_kit.errors import PermissionDenied, Unavailable

log = logging.getLogger("carbon.gateway.residents")

# Clocks of the issuing region and the gateway may differ by this much.
LEEWAY_S = 30


def _invalid(problem: str, message: str) -> PermissionDenied:
    return PermissionDenied(
        "RESIDENT_AUTHORIZATION_INVALID", f"{FIELD}: {message}", {"field": FIELD, "problem": problem}
    )


class ResidentAuthorizations:
    def __init__(self, keys: dict[str, Any] | None) -> None:
        self._keys = keys  # key id -> public key; None: not configured, every move is refused

    @classmethod
    def from_file(cls, path: str) -> ResidentAuthorizations:
        if not path:
            log.warning("no CARBON_RESIDENT_AUTH_JWKS_FILE: cross-region moves of residents' points are refused")
            return cls(None)
        try:
            key_set = jwt.PyJWKSet.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, jwt.PyJWKSetError) as error:
            raise ValueError(f"CARBON_RESIDENT_AUTH_JWKS_FILE: {path} is not a readable JWKS: {error}") from None
        return cls({key.key_id: key.key for key in key_set.keys if key.key_id})

    def check(self, token: str, operation: Operation) -> str:
        """Who asked on the resident's behalf, once the token is proved to be the resident's authorization of this
        operation; PERMISSION_DENIED with RESIDENT_AUTHORIZATION_REQUIRED, _INVALID, _EXPIRED or _MISMATCH."""
        if not token:
            raise PermissionDenied(
                "RESIDENT_AUTHORIZATION_REQUIRED",
                f"{FIELD}: moving a resident's points needs their authorization (IdentityService."
                "IssueResidentAuthorization in the source account's region)",
                {"field": FIELD},
            )
        if self._keys is None:
            raise Unavailable(
                "RESIDENT_AUTHORIZATION_NOT_CONFIGURED", "the gateway has no keys to verify resident authorizations"
            )
        issuer = issuer_of(operation.account[:6])
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise _invalid("malformed", "is not a signed token") from None
        if key_id != issuer:
            raise _invalid("issuer", "was not issued by the source account's region")
        key = self._keys.get(issuer)
        if key is None:
            raise _invalid("unknown_key", "its region's key is not known here")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise PermissionDenied(
                "RESIDENT_AUTHORIZATION_EXPIRED",
                f"{FIELD}: has expired; ask for a new one with the same request id",
                {"field": FIELD},
            ) from None
        except jwt.InvalidTokenError as error:
            raise _invalid(type(error).__name__, "does not verify") from None
        return authorized_by(claims, operation)
