"""Corrections of the real-name record (PIPL art. 46): the name or the phone number, asked by the person through
their own platform or at a counter, re-verified against the ID number on record, and audited (ADR 0207)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from identity_svc.domain.accounts import validate_account_number, validate_identifier
from identity_svc.domain.real_name import validate_id_number, validate_name, validate_phone_number
from service_kit.errors import InvalidArgument


@dataclass(frozen=True)
class Correction:
    """A validated correction; an empty name or phone number is left as it is."""

    request_id: str
    account_number: str
    id_number: str
    name: str
    phone_number: str
    staff_id: str

    def fields(self) -> list[str]:
        """What changes, by field name (the audit keeps names, never values)."""
        return [name for name, value in (("name", self.name), ("phone_number", self.phone_number)) if value]


def validate_correction(
    *,
    request_id: str,
    account_number: str,
    id_number: str,
    name: str,
    phone_number: str,
    staff_id: str,
    today: date,
) -> Correction:
    validate_identifier(request_id, "request_id")
    validate_account_number(account_number)
    validate_id_number(id_number, today)
    if not name and not phone_number:
        raise InvalidArgument("name", "name or phone_number must be given: nothing to correct")
    if staff_id:
        validate_identifier(staff_id, "staff_id")
    return Correction(
        request_id=request_id,
        account_number=account_number,
        id_number=id_number,
        name=validate_name(name) if name else "",
        phone_number=validate_phone_number(phone_number) if phone_number else "",
        staff_id=staff_id,
    )
