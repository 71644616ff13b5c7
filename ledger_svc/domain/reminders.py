"""Which reminders a China day brings (ADR 0113), as plain rules: points expiring 30 and 7 days later, and on the
1st the digest of the month just ended. Each notice has a key that names it once, so queueing it again (a resumed
run, two leaders overlapping) is answered DUPLICATE by identity and sent once."""

from __future__ import annotations

from datetime import date, timedelta
from typing import NamedTuple

# Days before expiry a resident is told.
DAYS_BEFORE = (30, 7)
NOTICES_PER_CALL = 500


class Expiring(NamedTuple):
    account: str
    points: int
    expires_on: date  # the China day the points expire (at its start)
    days_before: int

    @property
    def notice_key(self) -> str:
        return f"expiring:{self.account}:{self.expires_on.isoformat()}:{self.days_before}"


class Digest(NamedTuple):
    account: str
    points: int
    period: str  # "YYYY-MM"

    @property
    def notice_key(self) -> str:
        return f"digest:{self.account}:{self.period}"


def expiry_days(today: date) -> list[tuple[int, date]]:
    """(days before, the day the points expire) for each reminder of `today`."""
    return [(days, today + timedelta(days=days)) for days in DAYS_BEFORE]


def digest_period(today: date) -> str | None:
    """On the 1st, the month just ended; else None."""
    if today.day != 1:
        return None
    previous = today - timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"
