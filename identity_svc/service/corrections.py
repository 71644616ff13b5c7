"""Correcting a real-name record (PIPL art. 46, ADR 0207): the person, re-verified by the ID number on record, through
their own platform or at a counter, changes the name or phone number; each correction is audited by field name."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from sqlalchemy import Connection, Row

from identity_svc import store
from identity_svc.domain.accounts import AccountState, AccountView, unknown_account
from identity_svc.domain.corrections import Correction
from identity_svc.domain.requesters import Requester
from identity_svc.domain.resident_authorizations import asker
from identity_svc.service.accounts import AccountService
from service_kit.errors import AlreadyExists, FailedPrecondition

log = logging.getLogger("carbon.identity.corrections")


class CorrectionService:
    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    def correct(self, correction: Correction, requester: Requester) -> AccountView:
        keys = self.accounts.keys
        fingerprint = keys.fingerprint(
            "correct", correction.account_number, correction.id_number, correction.name, correction.phone_number,
            correction.staff_id,
        )  # fmt: skip
        with self.accounts.engine.begin() as conn:
            row = self._checked_account(conn, correction, requester)
            prior = store.corrections.correction(conn, correction.request_id)
            if prior is not None:
                if prior.fingerprint != fingerprint or prior.account_number != correction.account_number:
                    raise AlreadyExists(
                        "IDEMPOTENCY_KEY_REUSED",
                        "request_id: was used before with a different request",
                        {"field": "request_id"},
                    )
            else:
                self._apply(conn, row, correction, requester, fingerprint)
            fresh = store.accounts.account(conn, correction.account_number)
            assert fresh is not None
            view = self.accounts.view(conn, fresh)
        self.accounts.cache.invalidate([correction.account_number])
        log.info(
            "real-name record corrected",
            extra={"account_number": correction.account_number, "fields": ",".join(correction.fields())},
        )
        return view

    def _checked_account(self, conn: Connection, correction: Correction, requester: Requester) -> Row[Any]:
        """The open account, asked for by the person (their platform or a counter), re-verified by the ID number."""
        row = store.accounts.account_for_update(conn, correction.account_number)
        if row is None:
            raise unknown_account()
        if row.state != AccountState.OPEN:
            raise FailedPrecondition("ACCOUNT_CLOSED", "the account is closed or being closed")
        platforms = {
            binding.platform for binding in store.accounts.bindings_of(conn, [row.account_number])[row.account_number]
        }
        asker(requester, correction.staff_id, platforms)
        # Re-verification: the person proves the record is theirs with the ID number on it (read off the ID card at
        # the counter, or from the platform's own real-name check); a mismatch changes nothing and says nothing more.
        if row.id_hash is None or not hmac.compare_digest(
            self.accounts.keys.id_hash(correction.id_number), row.id_hash
        ):
            raise FailedPrecondition(
                "REVERIFICATION_FAILED", "the ID number does not match the record", {"field": "id_number"}
            )
        return row

    def _apply(
        self, conn: Connection, row: Row[Any], correction: Correction, requester: Requester, fingerprint: str
    ) -> None:
        record = self.accounts.record(row)
        name = correction.name or record["name"]
        phone = correction.phone_number or record.get("phone_number", "")
        sealed = self.accounts.seal_record(row.account_number, name, record["id_number"], phone)
        keys = self.accounts.keys
        store.accounts.update_account(
            conn,
            row.account_number,
            record_key_id=sealed.key_id,
            record_blob=sealed.blob,
            name_hash=self.accounts.name_hash(row.account_number, name),
            name_hash_key=keys.hash_key_id,
            phone_hash=keys.phone_hash(phone) if phone else None,
        )
        store.corrections.insert_correction(
            conn,
            request_id=correction.request_id,
            fingerprint=fingerprint,
            account_number=row.account_number,
            fields=",".join(correction.fields()),
            caller_service=requester.service,
            platform=requester.platform or None,
            staff_id=correction.staff_id or None,
            corrected_at=self.accounts.clock(),
        )
