"""Closing an account (PIPL right to erasure): dispose of the points, revoke consents, destroy the personal data.

Three steps, none holding a transaction across the ledger call (ADR 0202):
1. record the closure (PENDING, with the amount) and mark the account CLOSING, so no new event scores;
2. move the points in the ledger with a transfer id derived from the request id (a retry re-posts the same one);
3. erase: null the keyed hashes and the sealed real-name record, drop channel bindings (recorded in the binding
   audit, whose platform user ids are erased too), revoke consents, CLOSED.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

from identity_svc import store
from identity_svc.clients import PointsLedger
from identity_svc.domain.accounts import (
    AccountState,
    AccountView,
    Channel,
    unknown_account,
    validate_account_number,
    validate_identifier,
)
from identity_svc.domain.bindings import BindingEvent, BindingEventKind
from identity_svc.domain.closing import (
    CLOSED_BY,
    ClosureState,
    PointsDisposition,
    closing_transfer_id,
    disposable_points,
    require_open,
    validate_disposition,
)
from identity_svc.domain.consents import ConsentAction, ConsentTimeline, granted_categories
from identity_svc.domain.requesters import UNIDENTIFIED, Requester
from identity_svc.service.accounts import AccountService
from service_kit.errors import AlreadyExists, DomainError, FailedPrecondition, Unavailable

log = logging.getLogger("carbon.identity.closing")


class ClosingService:
    def __init__(self, accounts: AccountService, ledger: PointsLedger | None) -> None:
        self.accounts = accounts
        self.ledger = ledger

    def close(
        self,
        request_id: str,
        account_number: str,
        disposition: int,
        requested_by: str,
        requester: Requester = UNIDENTIFIED,
    ) -> tuple[AccountView, int]:
        validate_identifier(request_id, "request_id")
        validate_account_number(account_number)
        chosen = validate_disposition(disposition)
        validate_identifier(requested_by, "requested_by")
        pending = self._prior_or_require_open(request_id, account_number, chosen)
        if pending is not None and pending.state == ClosureState.DONE:
            return self.accounts.get_account(account_number), int(pending.amount_points)
        if pending is None:
            amount = self._start(request_id, account_number, chosen, requested_by)
        else:
            amount = int(pending.amount_points)
        if amount > 0:
            self._dispose(request_id, account_number, chosen, amount)
        with self.accounts.engine.begin() as conn:
            self._erase(conn, request_id, account_number, requester)
        self.accounts.cache.invalidate([account_number])
        log.info(
            "account closed",
            extra={"account_number": account_number, "disposition": chosen.name, "disposed_points": amount},
        )
        return self.accounts.get_account(account_number), amount

    def _prior_or_require_open(
        self, request_id: str, account_number: str, chosen: PointsDisposition
    ) -> Row[Any] | None:
        """The closure this request id started before (a retry resumes it), or None for a new request on an account
        that may start closing."""
        with self.accounts.engine.connect() as conn:
            prior = store.closures.closure(conn, request_id)
            if prior is None:
                row = store.accounts.account(conn, account_number)
                if row is None:
                    raise unknown_account()
                require_open(row.state)
                return None
        if prior.account_number != account_number or prior.disposition != int(chosen):
            raise AlreadyExists(
                "IDEMPOTENCY_KEY_REUSED",
                "request_id: was used before with a different request",
                {"field": "request_id"},
            )
        if prior.state == ClosureState.FAILED:
            raise FailedPrecondition("CLOSE_FAILED", "this close request failed; send a new request id to try again")
        return prior

    def _start(self, request_id: str, account_number: str, chosen: PointsDisposition, requested_by: str) -> int:
        """Step 1: decide the amount from the ledger's balance, record the closure and mark the account CLOSING."""
        if self.ledger is None:
            raise Unavailable("LEDGER_NOT_CONFIGURED", "no ledger address is configured (CARBON_LEDGER_ADDRESS)")
        balance = self.ledger.balance(account_number)
        amount = disposable_points(balance.available_points, balance.held_points, chosen)
        with self.accounts.engine.begin() as conn:
            row = store.accounts.account_for_update(conn, account_number)
            assert row is not None
            require_open(row.state)
            store.closures.insert_closure(
                conn,
                request_id=request_id,
                account_number=account_number,
                disposition=int(chosen),
                amount_points=amount,
                state=ClosureState.PENDING,
                requested_by=requested_by,
                created_at=self.accounts.clock(),
            )
            store.accounts.update_account(conn, account_number, state=int(AccountState.CLOSING))
        self.accounts.cache.invalidate([account_number])
        return amount

    def _dispose(self, request_id: str, account_number: str, chosen: PointsDisposition, amount: int) -> None:
        """Step 2: the points leave the account; a definitive refusal reopens it, an outage leaves it resumable."""
        assert self.ledger is not None
        try:
            self.ledger.dispose(closing_transfer_id(request_id), account_number, chosen, amount)
        except Unavailable:
            raise  # the closure stays PENDING; a retry with the same request id resumes here
        except DomainError:
            self._abandon(request_id, account_number)
            raise

    def _abandon(self, request_id: str, account_number: str) -> None:
        with self.accounts.engine.begin() as conn:
            store.closures.update_closure(
                conn, request_id, state=ClosureState.FAILED, finished_at=self.accounts.clock()
            )
            store.accounts.update_account(conn, account_number, state=int(AccountState.OPEN))
        self.accounts.cache.invalidate([account_number])

    def _erase(self, conn: Connection, request_id: str, account_number: str, requester: Requester) -> None:
        """Step 3: what erasure destroys and what stays is ADR 0202's list."""
        now = self.accounts.clock()
        row = store.accounts.account_for_update(conn, account_number)
        assert row is not None
        self._revoke_consents_in_force(conn, account_number, row.opened_via, now)
        self._unbind(conn, request_id, account_number, requester, now)
        store.accounts.erase_opening_details(conn, account_number)
        store.accounts.update_account(
            conn,
            account_number,
            state=int(AccountState.CLOSED),
            closed_at=now,
            id_hash=None,
            person_key=None,
            phone_hash=None,
            record_key_id=None,
            record_blob=None,
            name_hash=None,
            name_hash_key=None,
            # It dates the holder's birth (ADR 0206); the record it came from is gone too.
            control_passes_at=None,
        )
        store.closures.update_closure(conn, request_id, state=ClosureState.DONE, finished_at=now)

    @staticmethod
    def _unbind(conn: Connection, request_id: str, account_number: str, requester: Requester, now: datetime) -> None:
        """Each binding's removal is recorded (by platform: the platform user ids go with the personal data)."""
        bound = store.accounts.bindings_with_channels(conn, account_number)
        events = [
            BindingEvent(
                account_number=account_number,
                kind=BindingEventKind.UNBOUND_AT_CLOSING,
                channel=Channel(channel),
                platform=platform,
                platform_user_id="",
                community_centre_id="",
                request_id=request_id,
                requester=requester,
                staff_id="",
                occurred_at=now,
            )
            for platform, channel in bound
        ]
        store.accounts.delete_bindings(conn, account_number)
        store.bindings.erase_platform_user_ids(conn, account_number)
        store.bindings.insert_events(conn, events)

    @staticmethod
    def _revoke_consents_in_force(conn: Connection, account_number: str, channel: int, now: datetime) -> None:
        # The account is CLOSING by now; the consents in force are those it would have if it were still open.
        history = store.consents.consent_histories(conn, [account_number])[account_number]
        as_open = ConsentTimeline(known=True, state=AccountState.OPEN, events=tuple(history))
        store.consents.insert_consents(
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
                    "channel": channel,
                    "recorded_by": CLOSED_BY,
                }
                for category in granted_categories(as_open, now)
            ],
        )
