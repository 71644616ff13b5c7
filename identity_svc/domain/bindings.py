"""Binding events: the audit of who attached a channel to an account, or tried to, and how a binding is shown.

An account is reached through its bindings (a platform user names it), so each change to them is recorded with who
asked: the opening that created the account, a further channel bound to it, an attempt refused because the name did
not match, and the unbinding when the account is closed (ADR 0204).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from identity_svc.domain.accounts import Channel
from identity_svc.domain.requesters import Requester

_MASK = "****"
_SHOWN_AT_EACH_END = 2


class BindingEventKind(IntEnum):
    OPENED = 1  # the opening that created the account (with its channel binding, if any)
    BOUND = 2  # a further channel (binding or phone number) attached to the person's existing account
    REFUSED_NAME_MISMATCH = 3  # an opening on the person's ID number under another name: nothing bound
    UNBOUND_AT_CLOSING = 4  # a binding removed because the account was closed


@dataclass(frozen=True)
class BindingEvent:
    """One row of the binding audit, as written."""

    account_number: str
    kind: BindingEventKind
    channel: Channel
    platform: str
    platform_user_id: str
    community_centre_id: str
    request_id: str
    requester: Requester
    staff_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class BindingRecord:
    """A binding as ListBindings shows it."""

    platform: str
    masked_platform_user_id: str
    channel: Channel
    bound_at: datetime
    bound_by: str


def mask_identifier(value: str) -> str:
    """2088****01: enough for the person to recognise their own id, not enough to name anyone else's."""
    if len(value) <= 2 * _SHOWN_AT_EACH_END:
        return _MASK
    return value[:_SHOWN_AT_EACH_END] + _MASK + value[-_SHOWN_AT_EACH_END:]


def bound_by(caller_service: str, caller: str, staff_id: str) -> str:
    """Who asked for a binding, as shown to the person: the gateway's external caller, else the staff member (masked:
    an employee's id is personal), else the calling service; empty when nothing was recorded."""
    if caller:
        return caller
    if staff_id:
        return "staff:" + mask_identifier(staff_id)
    return caller_service
