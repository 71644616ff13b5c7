"""Guardianship use cases (ADR 0206, 0209): the guardian checked when a minor's account is opened or its consents
change (a guardian of another region judged by their home region through the gateway, asked before the transaction),
the standing of an account here for another region, and the hand-over recorded once the holder turns 14."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row

from identity_svc import store
from identity_svc.domain.guardians import (
    GuardianAnswer,
    acting_platform,
    require_acting_for_guardian,
    require_eligible_guardian,
    standing_of,
    under_guardian,
)
from identity_svc.domain.requesters import Requester
from service_kit.accounts import region_of
from service_kit.clock import china_day
from service_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable

log = logging.getLogger("carbon.identity.guardians")

# Opens an account's sealed real-name record (AccountService.record): the guardian's age is in their ID number.
RecordReader = Callable[[Row[Any]], dict[str, str]]


class RemoteGuardians(Protocol):
    """The standing of a guardian whose account is in another region, asked of that region through the gateway."""

    def answer(self, account_number: str, platform: str) -> GuardianAnswer:
        """UNAVAILABLE when the gateway or the guardian's region does not answer (retry)."""
        ...


class NoGateway:
    """Identity without CARBON_GATEWAY_ADDRESS: a guardian of another region cannot be judged, so is not accepted."""

    def answer(self, account_number: str, platform: str) -> GuardianAnswer:
        raise Unavailable(
            "DEPENDENCY_NOT_CONFIGURED",
            "no gateway is configured (CARBON_GATEWAY_ADDRESS): a guardian of another region cannot be checked",
            {"field": "guardian_account_number", "region": region_of(account_number)},
        )


def ask_remote_guardian(
    remote: RemoteGuardians, region_code: str, guardian_account_number: str, requester: Requester
) -> GuardianAnswer | None:
    """The home region's answer for a guardian of another region, None for a guardian here (or none named). Asked
    before the caller's transaction opens: a slow region holds no row lock, and a region that does not answer leaves
    nothing recorded."""
    if not guardian_account_number or region_of(guardian_account_number) == region_code:
        return None
    return remote.answer(guardian_account_number, acting_platform(requester))


def local_answer(
    conn: Connection, read_record: RecordReader, account_number: str, platform: str, now: datetime
) -> GuardianAnswer:
    """The standing of an account of this region, and whether `platform` holds a binding on it."""
    row = store.accounts.account(conn, account_number)
    id_number = read_record(row).get("id_number", "") if row is not None else ""
    standing = standing_of(row.state if row is not None else None, id_number, china_day(now))
    bound = bool(platform) and any(
        binding.platform == platform for binding in store.accounts.bindings_of(conn, [account_number])[account_number]
    )
    return GuardianAnswer(standing, bound, region_of(account_number))


def guardian_standing(
    engine: Engine, read_record: RecordReader, account_number: str, platform: str, now: datetime
) -> GuardianAnswer:
    """GetGuardianStanding: the answer another region's identity needs, and nothing more (ADR 0209)."""
    with engine.connect() as conn:
        return local_answer(conn, read_record, account_number, platform, now)


def check_guardian(
    conn: Connection,
    read_record: RecordReader,
    guardian_account_number: str,
    requester: Requester,
    now: datetime,
    remote: GuardianAnswer | None = None,
) -> None:
    """The named guardian holds an open, verified adult's account (here, or in the region that gave `remote`), and is
    the one asking (their platform or a counter)."""
    answer = remote or local_answer(conn, read_record, guardian_account_number, acting_platform(requester), now)
    require_eligible_guardian(answer)
    require_acting_for_guardian(requester, answer)


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
    remote: GuardianAnswer | None = None,
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
        check_guardian(conn, read_record, guardian_account_number, requester, now, remote)
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
