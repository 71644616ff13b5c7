"""Guardianship use cases (ADR 0206): the guardian checked when a minor's account is opened or its consents change,
and the hand-over recorded once the holder turns 14."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

from identity_svc import store
from identity_svc.domain.guardians import (
    require_acting_for_guardian,
    require_eligible_guardian,
    under_guardian,
)
from identity_svc.domain.requesters import Requester
from service_kit.clock import china_day
from service_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

log = logging.getLogger("carbon.identity.guardians")

# Opens an account's sealed real-name record (AccountService.record): the guardian's age is in their ID number.
RecordReader = Callable[[Row[Any]], dict[str, str]]


def check_guardian(
    conn: Connection, read_record: RecordReader, guardian_account_number: str, requester: Requester, now: datetime
) -> None:
    """The named guardian holds an open adult's account here, and is the one asking (their platform or a counter)."""
    row = store.accounts.account(conn, guardian_account_number)
    id_number = read_record(row).get("id_number", "") if row is not None else ""
    require_eligible_guardian(row.state if row is not None else None, id_number, china_day(now))
    platforms = {
        binding.platform
        for binding in store.accounts.bindings_of(conn, [guardian_account_number])[guardian_account_number]
    }
    require_acting_for_guardian(requester, platforms)


def require_recorded_guardian(account: Row[Any], guardian_account_number: str) -> None:
    """Binding a further channel to a minor's account: only with the guardian on record."""
    if guardian_account_number != (account.guardian_account_number or ""):
        raise FailedPrecondition(
            "GUARDIAN_NOT_ELIGIBLE",
            "the guardian named is not the one recorded for this account",
            {"field": "guardian_account_number"},
        )


def check_consent_change(
    conn: Connection,
    read_record: RecordReader,
    account: Row[Any],
    guardian_account_number: str,
    requester: Requester,
    now: datetime,
) -> None:
    """A minor's consents are the recorded guardian's to change; from the 14th birthday on, the holder's own (and the
    hand-over is recorded the first time it is noticed)."""
    if under_guardian(account.control_passes_at, now):
        if guardian_account_number != (account.guardian_account_number or ""):
            raise PermissionDenied(
                "GUARDIAN_NOT_ACTING",
                "the account holder is under 14: only their recorded guardian may change their consents",
                {"field": "guardian_account_number"},
            )
        check_guardian(conn, read_record, guardian_account_number, requester, now)
        return
    if guardian_account_number:
        raise InvalidArgument("guardian_account_number", "is only for an account whose holder is under 14")
    record_hand_over(conn, account, now)


def record_hand_over(conn: Connection, account: Row[Any], now: datetime) -> bool:
    """Records that control passed to the holder at their 14th birthday; True when this call recorded it."""
    if account.control_passes_at is None or account.control_passed_at is not None or now < account.control_passes_at:
        return False
    store.accounts.update_account(conn, account.account_number, control_passed_at=now)
    log.info("control passed to the account holder at 14", extra={"account_number": account.account_number})
    return True


def hand_over_due(conn: Connection, now: datetime, limit: int = 500) -> int:
    """Records the hand-over of every account whose holder has turned 14 since (a sweep beside the lazy path)."""
    rows = store.accounts.hand_overs_due(conn, now, limit)
    return sum(record_hand_over(conn, row, now) for row in rows)
