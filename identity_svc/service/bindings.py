"""Binding use cases: list an account's bindings with who made them, and bring name hashes under the current key."""

from __future__ import annotations

import logging

from identity_svc import store
from identity_svc.domain.accounts import Channel, unknown_account, validate_account_number
from identity_svc.domain.bindings import BindingRecord, bound_by, mask_identifier
from identity_svc.service.accounts import AccountService
from service_kit import paging

log = logging.getLogger("carbon.identity.bindings")

# A token bounded like every other: a page of an account's bindings never starts past this.
MAX_OFFSET = 1_000_000


def next_page_token(offset: int) -> str:
    """An offset, not the last binding's key: that key holds a platform user id, which callers only see masked. An
    account's bindings are few and only grow at the end (closing removes them all), so offsets stay put."""
    return paging.encode_token("bindings", offset)


def page_offset(token: str) -> int:
    return paging.decode_int(token, "bindings", MAX_OFFSET) or 0


class BindingService:
    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    def list_bindings(self, account_number: str, page_size: int, page_token: str) -> tuple[list[BindingRecord], str]:
        validate_account_number(account_number)
        size = paging.page_size(page_size)
        offset = page_offset(page_token)
        with self.accounts.engine.connect() as conn:
            if store.accounts.account(conn, account_number) is None:
                raise unknown_account()
            rows = store.bindings.binding_page(conn, account_number, offset, size + 1)
            keys = [(row.platform, row.platform_user_id) for row in rows[:size]]
            binders = store.bindings.latest_binders(conn, account_number, keys)
        records = []
        for row in rows[:size]:
            event = binders.get((row.platform, row.platform_user_id))
            by = bound_by(event.caller_service or "", event.caller or "", event.staff_id or "") if event else ""
            records.append(
                BindingRecord(
                    platform=row.platform,
                    masked_platform_user_id=mask_identifier(row.platform_user_id),
                    channel=Channel(row.channel),
                    bound_at=row.bound_at,
                    bound_by=by,
                )
            )
        return records, next_page_token(offset + size) if len(rows) > size else ""

    def rehash_names(self, batch_size: int = 500) -> int:
        """Brings one batch of name hashes under the current HMAC key (accounts opened before names were hashed, or
        after a key change); returns how many. Openings do the same lazily for the account they touch."""
        keys = self.accounts.keys
        with self.accounts.engine.begin() as conn:
            rows = store.accounts.accounts_needing_name_hash(conn, keys.hash_key_id, batch_size)
            for row in rows:
                self.accounts.name_hash_on_record(conn, row)
        if rows:
            log.info("name hashes computed", extra={"count": len(rows)})
        return len(rows)
