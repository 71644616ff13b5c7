"""Closing an account (PIPL right to erasure): dispose of the points, revoke consents, destroy the personal data.

Three steps, none holding a transaction across the ledger call (ADR 0202):
1. record the closure (PENDING, with the amount) and mark the account CLOSING, so no new event scores;
2. move the points in the ledger with a transfer id derived from the request id (a retry re-posts the same one);
3. erase: null the keyed hashes and the sealed real-name record, drop channel bindings, revoke consents, CLOSED.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Row

from identity_svc import store
from identity_svc.consents import timeline_from
from identity_svc.domain import (
    AccountState,
    ConsentAction,
    ConsentTimeline,
    PointsDisposition,
    granted_categories,
    validate_identifier,
)
from identity_svc.ledger_client import PointsLedger
from identity_svc.service import AccountService, AccountView, unknown_account
from service_kit.accounts import is_account_number
from service_kit.errors import DomainError, FailedPrecondition, InvalidArgument, Unavailable

log = logging.getLogger("carbon.identity.closing")

CLOSED_BY = "account-closure"
PENDING, DONE, FAILED = "PENDING", "DONE", "FAILED"


def transfer_id_for(request_id: str) -> str:
    return f"identity-close:{request_id}"


class ClosingService:
    def __init__(self, accounts: AccountService, ledger: PointsLedger | None) -> None:
        self.accounts = accounts
        self.ledger = ledger

    def close(
        self, request_id: str, account_number: str, disposition: int, requested_by: str
    ) -> tuple[AccountView, int]:
        validate_identifier(request_id, "request_id")
        if not is_account_number(account_number):
            raise InvalidArgument(
                "account_number", "must be a 16-digit account number", reason="INVALID_ACCOUNT_NUMBER"
            )
        if disposition not in PointsDisposition._value2member_map_:
            raise InvalidArgument("points_disposition", "must be a known disposition", reason="INVALID_DISPOSITION")
        chosen = PointsDisposition(disposition)
        validate_identifier(requested_by, "requested_by")
        engine = self.accounts.engine

        with engine.connect() as conn:
            pending = self._prior(conn, request_id, account_number, chosen)
            if pending is None:
                row = store.account(conn, account_number)
                if row is None:
                    raise unknown_account()
                self._require_open(row.state)
        if pending is not None and pending.state == DONE:
            return self.accounts.get_account(account_number), int(pending.amount_points)

        if pending is None:
            amount = self._disposable_points(account_number, chosen)
            with engine.begin() as conn:
                row = store.account_for_update(conn, account_number)
                assert row is not None
                self._require_open(row.state)
                store.insert_closure(
                    conn,
                    request_id=request_id,
                    account_number=account_number,
                    disposition=int(chosen),
                    amount_points=amount,
                    state=PENDING,
                    requested_by=requested_by,
                    created_at=self.accounts.clock(),
                )
                store.update_account(conn, account_number, state=int(AccountState.CLOSING))
            self.accounts.cache.invalidate([account_number])
        else:
            amount = int(pending.amount_points)

        if amount > 0:
            assert self.ledger is not None
            try:
                self.ledger.dispose(transfer_id_for(request_id), account_number, chosen, amount)
            except Unavailable:
                raise  # the closure stays PENDING; a retry with the same request id resumes here
            except DomainError:
                self._abandon(request_id, account_number)
                raise

        with engine.begin() as conn:
            self._erase(conn, request_id, account_number)
        self.accounts.cache.invalidate([account_number])
        log.info(
            "account closed",
            extra={"account_number": account_number, "disposition": chosen.name, "disposed_points": amount},
        )
        return self.accounts.get_account(account_number), amount

    def _prior(
        self, conn: Connection, request_id: str, account_number: str, chosen: PointsDisposition
    ) -> Row[Any] | None:
        prior = store.closure(conn, request_id)
        if prior is None:
            return None
        if prior.account_number != account_number or prior.disposition != int(chosen):
            raise InvalidArgument(
                "request_id", "was used before with a different request", reason="IDEMPOTENCY_KEY_REUSED"
            )
        if prior.state == FAILED:
            raise FailedPrecondition("CLOSE_FAILED", "this close request failed; send a new request id to try again")
        return prior

    @staticmethod
    def _require_open(state: int) -> None:
        if state == AccountState.CLOSED:
            raise FailedPrecondition("ACCOUNT_CLOSED", "the account is already closed")
        if state == AccountState.CLOSING:
            raise FailedPrecondition("ACCOUNT_CLOSING", "another close request for this account is in progress")

    def _disposable_points(self, account_number: str, chosen: PointsDisposition) -> int:
        if self.ledger is None:
            raise Unavailable("LEDGER_NOT_CONFIGURED", "no ledger address is configured (CARBON_LEDGER_ADDRESS)")
        balance = self.ledger.balance(account_number)
        if balance.held_points > 0:
            raise FailedPrecondition(
                "POINTS_HELD", "points are held by a redemption in progress", {"held_points": balance.held_points}
            )
        amount = max(balance.available_points, 0)
        if amount > 0 and chosen not in (PointsDisposition.DONATE, PointsDisposition.FORFEIT):
            raise FailedPrecondition(
                "POINTS_DISPOSITION_REQUIRED",
                "points remain: choose POINTS_DISPOSITION_DONATE or POINTS_DISPOSITION_FORFEIT",
                {"available_points": amount},
            )
        return amount

    def _abandon(self, request_id: str, account_number: str) -> None:
        with self.accounts.engine.begin() as conn:
            store.update_closure(conn, request_id, state=FAILED, finished_at=self.accounts.clock())
            store.update_account(conn, account_number, state=int(AccountState.OPEN))
        self.accounts.cache.invalidate([account_number])

    def _erase(self, conn: Connection, request_id: str, account_number: str) -> None:
        now = self.accounts.clock()
        row = store.account_for_update(conn, account_number)
        assert row is not None
        history = store.consent_histories(conn, [account_number])[account_number]
        as_open = timeline_from(row, history)
        as_open = ConsentTimeline(True, AccountState.OPEN, as_open.events)
        store.insert_consents(
            conn,
            [
                {
                    "request_id": None,
                    "fingerprint": CLOSED_BY,
                    "account_number": account_number,
                    "category": int(category),
                    "action": int(ConsentAction.REVOKE),
                    "effective_at": now,
                    "recorded_at": now,
                    "channel": row.opened_via,
                    "recorded_by": CLOSED_BY,
                }
                for category in granted_categories(as_open, now)
            ],
        )
        store.delete_bindings(conn, account_number)
        store.erase_opening_details(conn, account_number)
        store.update_account(
            conn,
            account_number,
            state=int(AccountState.CLOSED),
            closed_at=now,
            id_hash=None,
            person_key=None,
            phone_hash=None,
            record_key_id=None,
            record_blob=None,
        )
        store.update_closure(conn, request_id, state=DONE, finished_at=now)
