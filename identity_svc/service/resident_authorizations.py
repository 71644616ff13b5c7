"""Issuing resident authorizations: check who asks and for what, record the issuance, sign the token (ADR 0205)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError

from identity_svc import store
from identity_svc.domain.accounts import AccountState, unknown_account
from identity_svc.domain.requesters import Requester
from identity_svc.domain.resident_authorizations import (
    LIFETIME,
    Asker,
    AuthorizationRequest,
    Issuance,
    asker,
    claims,
)
from identity_svc.service.accounts import AccountService
from service_kit.errors import AlreadyExists, FailedPrecondition, Unavailable

log = logging.getLogger("carbon.identity.resident_authorizations")

ALGORITHM = "EdDSA"
# Two first requests under one key race on the primary key; the loser retries and sees the winner's issuance.
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class IssuedAuthorization:
    token: str
    token_id: str
    expires_at: datetime


class ResidentAuthorizationService:
    def __init__(self, accounts: AccountService, signing_key: Ed25519PrivateKey | None, issuer: str) -> None:
        self.accounts = accounts
        self.signing_key = signing_key
        # This identity service's SPIFFE ID: the token's iss and its key id.
        self.issuer = issuer

    def issue(self, request: AuthorizationRequest, requester: Requester) -> IssuedAuthorization:
        if self.signing_key is None:
            raise Unavailable(
                "RESIDENT_AUTHORIZATION_NOT_CONFIGURED", "no signing key is configured (CARBON_RESIDENT_AUTH_KEY_FILE)"
            )
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.accounts.engine.begin() as conn:
                    by, issuance = self._issue_in(conn, request, requester)
                break
            except IntegrityError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        token = jwt.encode(
            claims(self.issuer, request, by, issuance),
            self.signing_key,
            algorithm=ALGORITHM,
            headers={"kid": self.issuer, "typ": "JWT"},
        )
        log.info(
            "resident authorization issued",
            extra={
                "account_number": request.account_number,
                "operation": request.operation.claim,
                "asked_by": by.platform or "counter staff",
                "token_id": issuance.token_id,
            },
        )
        return IssuedAuthorization(token=token, token_id=issuance.token_id, expires_at=issuance.expires_at)

    def _issue_in(
        self, conn: Connection, request: AuthorizationRequest, requester: Requester
    ) -> tuple[Asker, Issuance]:
        """Who asks is checked before the request id is looked at, so a refused caller learns nothing of others'."""
        number = request.account_number
        row = store.accounts.account(conn, number)
        if row is None:
            raise unknown_account()
        if row.state != AccountState.OPEN:
            raise FailedPrecondition("ACCOUNT_CLOSED", "the account is closed or being closed")
        platforms = {binding.platform for binding in store.accounts.bindings_of(conn, [number])[number]}
        by = asker(requester, request.staff_id, platforms)
        now = self.accounts.clock()
        prior = store.resident_authorizations.authorization(conn, number, request.request_id)
        if prior is None:
            issuance = _new_issuance(now)
            store.resident_authorizations.insert_authorization(
                conn,
                account_number=number,
                request_id=request.request_id,
                operation=int(request.operation),
                amount_points=request.amount_points,
                to_account=request.to_account,
                reward_id=request.reward_id or None,
                quantity=request.quantity,
                platform=by.platform or None,
                staff_id=by.staff_id or None,
                caller_service=requester.service,
                caller=requester.caller or None,
                **_values(issuance),
            )
            return by, issuance
        if not _same_request(prior, request, by, requester):
            raise AlreadyExists(
                "IDEMPOTENCY_KEY_REUSED",
                "request_id: was used before with a different request",
                {"field": "request_id"},
            )
        issuance = Issuance(prior.token_id, prior.issued_at, prior.expires_at)
        if not issuance.valid_at(now):
            # The operation may still be waiting for its authorization: a fresh token for the same operation.
            issuance = _new_issuance(now)
            store.resident_authorizations.renew_authorization(conn, number, request.request_id, **_values(issuance))
        return by, issuance


def _new_issuance(now: datetime) -> Issuance:
    # Whole seconds, as iat and exp carry them: signing the stored issuance again gives the same token.
    issued_at = now.replace(microsecond=0)
    return Issuance(token_id=str(uuid.uuid4()), issued_at=issued_at, expires_at=issued_at + LIFETIME)


def _values(issuance: Issuance) -> dict[str, Any]:
    return {"token_id": issuance.token_id, "issued_at": issuance.issued_at, "expires_at": issuance.expires_at}


def _same_request(prior: Row[Any], request: AuthorizationRequest, by: Asker, requester: Requester) -> bool:
    return (
        prior.operation == int(request.operation)
        and prior.amount_points == request.amount_points
        and prior.to_account == request.to_account
        and (prior.reward_id or "") == request.reward_id
        and prior.quantity == request.quantity
        and (prior.platform or "") == by.platform
        and (prior.staff_id or "") == by.staff_id
        and prior.caller_service == requester.service
    )
