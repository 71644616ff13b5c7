"""Verifying a resident authorization: an EdDSA JWT whose key is the regions' public JWKS
(CARBON_RESIDENT_AUTH_JWKS_FILE, key id = the issuing identity service's SPIFFE ID), signed by the source account's
region, for the gateway, unexpired, and bound to the operation (gateway.domain.resident_authorizations).

A well-formed, valid token is read once, by a fast path that accepts only what PyJWT would accept; any token it does
not accept is verified again by PyJWT, which names the reason. PyJWT alone parsed every token twice (once for its key
id) and checks base64 character by character: together most of a batched transfer's cost of verifying it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.domain.resident_authorizations import AUDIENCE, FIELD, Operation, authorized_by, issuer_of
from service_kit.errors import PermissionDenied, Unavailable

log = logging.getLogger("carbon.gateway.residents")

# Clocks of the issuing region and the gateway may differ by this much.
LEEWAY_S = 30
_REQUIRED = ("exp", "iat", "iss", "aud", "sub")
# A compact token with three unpadded base64url segments: the only form the fast path reads.
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


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
        claims = self._verified_quickly(token, issuer)
        if claims is None:
            claims = self._verified_by_pyjwt(token, issuer)
        return authorized_by(claims, operation)

    def _verified_quickly(self, token: str, issuer: str) -> dict[str, Any] | None:
        """The claims of a token that PyJWT would accept with the checks of _verified_by_pyjwt, read once; None for
        anything else (unusual but maybe valid, or refused), which PyJWT then judges. Every condition here is at least
        as strict as PyJWT's, so the fast path never accepts a token PyJWT would refuse."""
        assert self._keys is not None
        match = _COMPACT.fullmatch(token)
        if match is None:
            return None
        header_segment, payload_segment, signature_segment = match.groups()
        header, payload, signature = (
            _segment(header_segment),
            _segment(payload_segment),
            _segment(signature_segment),
        )
        if header is None or payload is None or signature is None:
            return None
        try:
            header_fields, claims = json.loads(header), json.loads(payload)
        except (ValueError, RecursionError):
            return None
        if not isinstance(header_fields, dict) or not isinstance(claims, dict):
            return None
        # No crit, b64 or other parameters PyJWT would act on; the key id names the issuer whose key we hold.
        if set(header_fields) - {"alg", "kid", "typ"} or header_fields.get("alg") != "EdDSA":
            return None
        if header_fields.get("kid") != issuer:
            return None
        key = self._keys.get(issuer)
        if not isinstance(key, Ed25519PublicKey | Ed448PublicKey):
            return None
        try:
            key.verify(signature, f"{header_segment}.{payload_segment}".encode("ascii"))
        except InvalidSignature:
            return None
        return claims if _claims_pass(claims, issuer, time.time()) else None

    def _verified_by_pyjwt(self, token: str, issuer: str) -> dict[str, Any]:
        """The claims once PyJWT verified the token; the refusal naming what is wrong with it."""
        assert self._keys is not None
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
                options={"require": list(_REQUIRED)},
            )
        except jwt.ExpiredSignatureError:
            raise PermissionDenied(
                "RESIDENT_AUTHORIZATION_EXPIRED",
                f"{FIELD}: has expired; ask for a new one with the same request id",
                {"field": FIELD},
            ) from None
        except jwt.InvalidTokenError as error:
            raise _invalid(type(error).__name__, "does not verify") from None
        return claims


def _segment(segment: str) -> bytes | None:
    """A base64url segment's bytes when it is in canonical form (as PyJWT requires), else None."""
    if len(segment) % 4 == 1:
        return None
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error:
        return None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode("ascii"):
        return None
    return decoded


def _claims_pass(claims: dict[str, Any], issuer: str, now_s: float) -> bool:
    """PyJWT's claim checks as _verified_by_pyjwt asks for them, in their plainest form only: integer times, one
    audience string, no nbf."""
    if any(claims.get(claim) is None for claim in _REQUIRED) or "nbf" in claims:
        return False
    issued_at, expires = claims["iat"], claims["exp"]
    if type(issued_at) is not int or type(expires) is not int:
        return False
    return (
        issued_at <= now_s + LEEWAY_S
        and expires > now_s - LEEWAY_S
        and claims["iss"] == issuer
        and claims["aud"] == AUDIENCE
        and isinstance(claims["sub"], str)
        and isinstance(claims.get("jti", ""), str)
    )
