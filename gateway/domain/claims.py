"""Activity claims (docs/adr/0606-activity-claims-at-the-gateway.md): the first claim of an activity fingerprint holds
it nationwide; a later claim by another event is told who holds it. Pure rules: which claims a batch may make, which
days are kept, and whether a holder is the claimant itself (a retry)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple

from service_kit import paging
from service_kit.errors import InvalidArgument
from service_kit.wire import MAX_UNIX_US, MIN_UNIX_US

FINGERPRINT_BYTES = 32
MAX_CLAIMS_PER_CALL = 5000
MAX_KEY_ID_CHARS = 32
MAX_PARTNER_ID_CHARS = 64
MAX_EVENT_ID_CHARS = 128
MAX_CONFLICT_DAYS = 62
MAX_ATTEMPT_ID_CHARS = 64
# Claims are kept for ingest's longest acceptance window (a community counter's 31 days) plus a margin for clocks
# and retries; a claim for an older day could only come from an event ingest refuses as TOO_OLD.
DEFAULT_RETENTION_DAYS = 33
# An event may be up to the acceptance's clock skew in the future: its CST day may be tomorrow.
FUTURE_DAYS = 1
# Listing attempts that claimed ahead (docs/adr/0416): an attempt carries up to 5000 claims (160 KB of fingerprints),
# so a page of 50 stays far below gRPC's message limit.
DEFAULT_ATTEMPTS_PER_PAGE = 20
MAX_ATTEMPTS_PER_PAGE = 50
MAX_ATTEMPT_AGE_SECONDS = 86_400
# An attempt is kept this long for the claimant's sweep, which reads it minutes after its claims: two days leave room
# for a sweep stopped over a weekend night, and keep ~2 million rows a day of ~20 KB from standing for the 33 days
# the claims stay (docs/scale-plan.md §4). An attempt a sweep never read in time leaves its claims to their day's drop.
ATTEMPT_RETENTION = timedelta(days=2)
ATTEMPTS_LIST = "claim-attempts"


class Claim(NamedTuple):
    day: date  # the activity's CST day: the claim is kept under it
    fingerprint: bytes
    key_id: str
    partner_id: str
    event_id: str


class Holder(NamedTuple):
    region_code: str
    partner_id: str
    event_id: str


class ConflictCount(NamedTuple):
    day: date
    holder_region: str
    holder_partner: str
    claimant_region: str
    claimant_partner: str
    conflicts: int


def retained_days(today: date, retention_days: int) -> tuple[date, date]:
    """The first and last day a claim may be made for: older days are dropped whole."""
    return today - timedelta(days=retention_days), today + timedelta(days=FUTURE_DAYS)


class ClaimColumns(NamedTuple):
    """A request's claims as checked columns, one entry per claim in request order: the batch travels to the database
    as columns, with no object per claim on the way (claims of other callers hold the same fields as `Claim`s)."""

    fingerprints: Sequence[bytes]
    key_ids: Sequence[str]
    days: Sequence[str]  # each the ISO text of a day in `distinct_days`
    partner_ids: Sequence[str]
    event_ids: Sequence[str]
    distinct_days: dict[str, date]
    # Claims made under an attempt (ADR 0415): "" for claims after recording. `recorded`: the attempt has recorded
    # its events, and takes over their claims from the same claimant's other attempts.
    attempt_id: str = ""
    recorded: bool = False

    @property
    def size(self) -> int:
        return len(self.fingerprints)

    def claim(self, index: int) -> Claim:
        return Claim(
            self.distinct_days[self.days[index]],
            self.fingerprints[index],
            self.key_ids[index],
            self.partner_ids[index],
            self.event_ids[index],
        )

    def claims(self) -> list[Claim]:
        return [self.claim(index) for index in range(self.size)]

    @classmethod
    def of(cls, claims: Sequence[Claim]) -> ClaimColumns:
        return cls(
            [c.fingerprint for c in claims],
            [c.key_id for c in claims],
            [c.day.isoformat() for c in claims],
            [c.partner_id for c in claims],
            [c.event_id for c in claims],
            {c.day.isoformat(): c.day for c in claims},
        )


def claims_from_columns(
    fingerprints: Sequence[bytes],
    key_ids: Sequence[str],
    occurred_days: Sequence[str],
    partner_ids: Sequence[str],
    event_ids: Sequence[str],
    days: tuple[date, date],
    attempt_id: str = "",
    recorded: bool = False,
) -> ClaimColumns:
    """The claims of a request, each checked; INVALID_ARGUMENT names the first bad column. Each column is checked
    whole (its distinct values, its lengths), as the columns arrive. Each is made a list first: a message's repeated
    field makes a new Python object for an entry at every pass over it."""
    fingerprints, occurred_days = list(fingerprints), list(occurred_days)
    key_ids, partner_ids, event_ids = list(key_ids), list(partner_ids), list(event_ids)
    count = len(fingerprints)
    if any(len(column) != count for column in (key_ids, occurred_days, partner_ids, event_ids)):
        raise InvalidArgument("fingerprints", "the claim columns must all have one entry per claim")
    distinct_days = _keys(fingerprints, occurred_days, days)
    if len(attempt_id) > MAX_ATTEMPT_ID_CHARS:
        raise InvalidArgument("attempt_id", f"at most {MAX_ATTEMPT_ID_CHARS} characters")
    if recorded and not attempt_id:
        raise InvalidArgument("attempt_id", "recorded claims name the attempt that recorded them")
    for column, field, max_chars in (
        (key_ids, "key_ids", MAX_KEY_ID_CHARS),
        (partner_ids, "partner_ids", MAX_PARTNER_ID_CHARS),
        (event_ids, "event_ids", MAX_EVENT_ID_CHARS),
    ):
        if count and not 1 <= min(map(len, column)) <= max(map(len, column)) <= max_chars:
            raise InvalidArgument(field, f"each entry must be 1-{max_chars} characters")
    return ClaimColumns(
        fingerprints, key_ids, occurred_days, partner_ids, event_ids, distinct_days, attempt_id, recorded
    )


class Release(NamedTuple):
    """Claims one attempt made ahead of recording and gives back (ADR 0415), as columns."""

    fingerprints: Sequence[bytes]
    days: Sequence[str]
    distinct_days: dict[str, date]
    attempt_id: str

    @property
    def size(self) -> int:
        return len(self.fingerprints)


def release_from_columns(
    fingerprints: Sequence[bytes], occurred_days: Sequence[str], attempt_id: str, days: tuple[date, date]
) -> Release:
    """The claims a release names, checked like a claim's; INVALID_ARGUMENT names the bad field."""
    if len(occurred_days) != len(fingerprints):
        raise InvalidArgument("fingerprints", "fingerprints and occurred_days must have one entry per claim")
    distinct_days = _keys(fingerprints, occurred_days, days)
    if not 1 <= len(attempt_id) <= MAX_ATTEMPT_ID_CHARS:
        raise InvalidArgument("attempt_id", f"must be 1-{MAX_ATTEMPT_ID_CHARS} characters")
    return Release(list(fingerprints), list(occurred_days), distinct_days, attempt_id)


def _keys(fingerprints: Sequence[bytes], occurred_days: Sequence[str], days: tuple[date, date]) -> dict[str, date]:
    """Checks the claims' keys (count, fingerprint sizes, days) whole; returns the distinct days by their text."""
    count = len(fingerprints)
    if count > MAX_CLAIMS_PER_CALL:
        raise InvalidArgument("fingerprints", f"at most {MAX_CLAIMS_PER_CALL} claims per call")
    if count and set(map(len, fingerprints)) != {FINGERPRINT_BYTES}:
        raise InvalidArgument("fingerprints", f"each fingerprint is {FINGERPRINT_BYTES} bytes (HMAC-SHA256)")
    return {text: _day(text, "occurred_days", days) for text in set(occurred_days)}


class AttemptClaims(NamedTuple):
    """An attempt that claimed ahead of recording, with the claims it made (as it sent them)."""

    attempt_id: str
    claimed_at: datetime
    fingerprints: list[bytes]
    days: list[str]  # each fingerprint's ISO CST day


class AttemptQuery(NamedTuple):
    """Which of a region's attempts to list: those claimed at least `min_age` ago, after `after` (the claimed time in
    µs and the attempt id of the last one listed before; None: from the oldest)."""

    min_age: timedelta
    page_size: int
    after: tuple[int, str] | None


def attempt_query(min_age_seconds: int, page_size: int, page_token: str) -> AttemptQuery:
    """The checked request of ListClaimAttempts; INVALID_ARGUMENT names the bad field."""
    if not 1 <= min_age_seconds <= MAX_ATTEMPT_AGE_SECONDS:
        raise InvalidArgument("min_age_seconds", f"must be 1-{MAX_ATTEMPT_AGE_SECONDS}")
    size = min(paging.page_size(page_size, default=DEFAULT_ATTEMPTS_PER_PAGE), MAX_ATTEMPTS_PER_PAGE)
    cursor = paging.decode_token(page_token, ATTEMPTS_LIST, int, str)
    after = None if cursor is None else (int(cursor[0]), str(cursor[1]))
    if after is not None and not MIN_UNIX_US <= after[0] <= MAX_UNIX_US:
        raise InvalidArgument("page_token", "is not a page token of this list")
    return AttemptQuery(timedelta(seconds=min_age_seconds), size, after)


def attempts_token(claimed_at_us: int, attempt_id: str) -> str:
    """The page token of the attempts after this one."""
    return paging.encode_token(ATTEMPTS_LIST, claimed_at_us, attempt_id)


def conflict_days(from_text: str, to_text: str) -> tuple[date, date]:
    first = _day(from_text, "from_day", None)
    last = _day(to_text, "to_day", None)
    if last < first:
        raise InvalidArgument("to_day", "must not be before from_day")
    if (last - first).days >= MAX_CONFLICT_DAYS:
        raise InvalidArgument("to_day", f"at most {MAX_CONFLICT_DAYS} days per call")
    return first, last


def holds_own(holder: Holder, region_code: str, claim: Claim) -> bool:
    """Whether the holder is the claiming event itself: its retry after a crash between claim and credit."""
    return holder == (region_code, claim.partner_id, claim.event_id)


def _day(text: str, field: str, bounds: tuple[date, date] | None) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(field, f"{text!r} is not a day (YYYY-MM-DD)") from None
    if bounds is not None and not bounds[0] <= day <= bounds[1]:
        raise InvalidArgument(field, f"{day} is outside the retained days {bounds[0]}..{bounds[1]}")
    return day
