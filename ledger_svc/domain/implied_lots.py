"""Lots implied by their transfer: the journal keeps no lot record for them, and readers derive them.

An EARN from a system account to a user account puts all its points into the lot of its earning day: the CST day
of `earned_at_us` (or `posted_at_us` when 0), expiring IMPLIED_LOT_VALIDITY_MONTHS later (ADR 0106).
An EXPIRE to the expiry account takes all it moves from the one lot its reference names, `lot:<lot id>` (ADR 0130).
"""

from __future__ import annotations

from ledger_svc.domain.lots import LotKey
from ledger_svc.domain.names import TransferCode
from ledger_svc.domain.time import DEFAULT_VALIDITY_MONTHS, US_PER_HOUR, lot_dates_of_hour
from ledger_svc.domain.transfers import Posting
from service_kit.accounts import EXPIRY_ACCOUNT, is_system_account

# The reference an expiry transfer carries: the id of the lot it emptied (domain/expiry.py writes it).
EXPIRED_LOT_REFERENCE_PREFIX = "lot:"

# The validity a reader assumes for an earn the journal keeps no lot record of. A constant, not the setting: changing
# CARBON_LEDGER_VALIDITY_MONTHS must not change which lot earlier earns read as filling (a ledger set to another
# validity writes its earns' records, as every ledger did before ADR 0106).
IMPLIED_LOT_VALIDITY_MONTHS = DEFAULT_VALIDITY_MONTHS


def implied_credit_lot(
    code: int, debit_account: str, credit_account: str, earned_at_us: int, posted_at_us: int
) -> LotKey | None:
    """The lot an EARN from a system account to a user account fills when it is fresh points of its earning day.
    None for any other transfer."""
    if code != TransferCode.EARN or not is_system_account(debit_account) or is_system_account(credit_account):
        return None
    dates = lot_dates_of_hour((earned_at_us or posted_at_us) // US_PER_HOUR, IMPLIED_LOT_VALIDITY_MONTHS)
    return LotKey(credit_account, dates.expires_at_us, dates.earned_on)


def credit_lots_implied(posting: Posting) -> bool:
    """Whether the posting's credit side is exactly its implied lot: then no lot record is written for it."""
    if len(posting.credit_lots) != 1:
        return False
    portion = posting.credit_lots[0]
    return portion.amount_points == posting.amount_points and portion.key == implied_credit_lot(
        posting.code, posting.debit_account, posting.credit_account, posting.earned_at_us, posting.posted_at_us
    )


def implied_debit_lot_id(code: int, credit_account: str, reference: str) -> int | None:
    """The lot an EXPIRE into the expiry account emptied: the one its reference names. None for any other
    transfer."""
    if code != TransferCode.EXPIRE or credit_account != EXPIRY_ACCOUNT:
        return None
    if not reference.startswith(EXPIRED_LOT_REFERENCE_PREFIX):
        return None
    digits = reference.removeprefix(EXPIRED_LOT_REFERENCE_PREFIX)
    return int(digits) if digits.isdigit() else None


def debit_lots_implied(posting: Posting) -> bool:
    """Whether the posting's debit side is exactly its implied lot (all its points from the lot its reference
    names): then no lot record is written for it."""
    if len(posting.debit_lots) != 1:
        return False
    portion = posting.debit_lots[0]
    return portion.amount_points == posting.amount_points and portion.lot_id == implied_debit_lot_id(
        posting.code, posting.credit_account, posting.reference
    )
