"""Activity fingerprints: which fields of an event identify the real-world activity whoever reports it (each
behaviour's reviewed `fingerprint` entry in catalog.yaml), and their keyed hash under the national fingerprint key.

Only the hash and its key id leave the region (docs/adr/0412-activity-fingerprints.md). The key is chosen by the
day the activity happened, not by the day it is claimed, so every region and every retry picks the same key for the
same activity, before and after a rotation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NamedTuple, Protocol

# The event fields a fingerprint may name. `evidence_ref` is the partner-independent id of the activity (tap or QR
# id with the line, charger session, operator and ride id, merchant and order id, station and ticket); `account` the
# resolved account number (the same person's accounts in two regions differ, so it only links one region's reports);
# `day` the China Standard Time day; `occurred_minute` the UTC minute; `tier` a tiered behaviour's tier.
FIELDS = frozenset({"evidence_ref", "account", "day", "occurred_minute", "tier"})
FINGERPRINT_BYTES = 32
MAX_KEY_ID_CHARS = 32
MIN_KEY_BYTES = 32
# Separates the hashed parts; no field may contain it (checked when a field is added here, not per event: evidence
# refs are printable text, the others are digits, codes and ISO dates).
_SEPARATOR = "\x1f"


class FingerprintError(ValueError):
    """A fingerprint definition or key is wrong; the message names it, never a key's value."""


@dataclass(frozen=True)
class FingerprintSpec:
    """The fields hashed for a behaviour's events, and the reviewed fallback used when the event carries no
    evidence_ref although `fields` names it (partners that report without one)."""

    fields: tuple[str, ...]
    fallback: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (*self.fields, *self.fallback):
            if name not in FIELDS:
                raise FingerprintError(f"fingerprint field {name!r} is not one of {', '.join(sorted(FIELDS))}")
        if not self.fields:
            raise FingerprintError("a fingerprint names at least one field")
        if "evidence_ref" in self.fields and not self.fallback:
            raise FingerprintError("a fingerprint on evidence_ref needs a fallback for events without one")
        if "evidence_ref" in self.fallback:
            raise FingerprintError("the fallback is for events without an evidence_ref, so it cannot name one")


# For a behaviour the catalog does not know (it defines every one it offers; see catalog.py): its evidence id, or the
# account and minute.
DEFAULT_SPEC = FingerprintSpec(("evidence_ref",), ("account", "occurred_minute"))


class FingerprintKey(NamedTuple):
    key_id: str
    secret: bytes
    from_day: date  # first activity day (CST) hashed with this key


# SHA-256's block: HMAC pads the key to it (RFC 2104).
_BLOCK_BYTES = 64


class KeyedHash:
    """HMAC-SHA256 under one key, its inner and outer key blocks hashed once: each digest then copies two prepared
    hash states. The bytes are hmac.digest's (pinned by a test); OpenSSL 3's one-shot HMAC looks the algorithm up and
    pads the key at every call, which cost more than hashing an activity's short text."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) > _BLOCK_BYTES:
            secret = hashlib.sha256(secret).digest()
        block = secret.ljust(_BLOCK_BYTES, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class Fingerprint(NamedTuple):
    digest: bytes  # HMAC-SHA256, FINGERPRINT_BYTES long
    key_id: str
    day: date  # the activity's CST day: the gateway keeps the claim under it


class ActivityHolder(NamedTuple):
    """The event that holds an activity nationally, as the gateway names it (carbon.ingest.v1.ActivityHolder)."""

    region_code: str
    partner_id: str
    event_id: str


class ActivityFields(NamedTuple):
    """What a fingerprint may read of one stored event."""

    behaviour: str
    evidence_ref: str
    account_number: str
    day: date
    occurred_at: datetime
    tier: str


class FingerprintKeys:
    """The national fingerprint keys, each in force from its day: "<key id>:<hex of >= 32 bytes>[@YYYY-MM-DD]",
    comma-separated (CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS). A key without a day is in force from the beginning."""

    def __init__(self, keys: list[FingerprintKey]) -> None:
        if not keys:
            raise FingerprintError("no activity fingerprint key")
        self._keys = sorted(keys, key=lambda k: k.from_day, reverse=True)
        if len({k.from_day for k in keys}) != len(keys):
            raise FingerprintError("two activity fingerprint keys start on the same day")
        self._hashes = {key.from_day: KeyedHash(key.secret) for key in keys}

    def __repr__(self) -> str:
        return f"FingerprintKeys({[k.key_id for k in self._keys]})"

    @classmethod
    def parse(cls, text: str) -> FingerprintKeys:
        keys = []
        for entry in filter(None, (part.strip() for part in text.split(","))):
            key_id, _, rest = entry.partition(":")
            secret_hex, _, day_text = rest.partition("@")
            if not key_id or len(key_id) > MAX_KEY_ID_CHARS or not key_id.isprintable():
                raise FingerprintError(f"activity fingerprint key id must be 1-{MAX_KEY_ID_CHARS} characters")
            try:
                secret = bytes.fromhex(secret_hex)
                from_day = date.fromisoformat(day_text) if day_text else date.min
            except ValueError:
                raise FingerprintError(f"activity fingerprint key {key_id!r}: expected <hex>[@YYYY-MM-DD]") from None
            if len(secret) < MIN_KEY_BYTES:
                raise FingerprintError(f"activity fingerprint key {key_id!r}: at least {MIN_KEY_BYTES} bytes")
            keys.append(FingerprintKey(key_id, secret, from_day))
        return cls(keys)

    def hash_for(self, key: FingerprintKey) -> KeyedHash:
        return self._hashes[key.from_day]

    def key_for(self, day: date) -> FingerprintKey:
        for key in self._keys:
            if key.from_day <= day:
                return key
        raise FingerprintError(f"no activity fingerprint key is in force on {day}")


class Activity(Protocol):
    """What a fingerprint reads of an event: `ActivityFields`, or a stored `EventRow` as it is."""

    @property
    def behaviour(self) -> str: ...
    @property
    def evidence_ref(self) -> str: ...
    @property
    def account_number(self) -> str: ...
    @property
    def day(self) -> date: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def tier(self) -> str: ...


class FingerprintColumns(NamedTuple):
    """Fingerprints of a batch of activities as columns, in order (as ClaimActivities carries them)."""

    digests: list[bytes]
    key_ids: list[str]
    days: list[str]  # ISO CST days


def activity_text(spec: FingerprintSpec, activity: Activity, day: str = "") -> str:
    """The text hashed for an activity: the behaviour, its day (the claim's partition) and the spec's fields by
    name; the fallback's fields when the event has no evidence_ref. `day`: the activity's day in ISO form, if known."""
    names = spec.fallback if "evidence_ref" in spec.fields and not activity.evidence_ref else spec.fields
    day = day or activity.day.isoformat()
    parts = [activity.behaviour, day]
    for name in names:
        parts.append(f"{name}={_field_text(name, activity, day)}")
    return _SEPARATOR.join(parts)


def _field_text(name: str, activity: Activity, day: str) -> str:
    if name == "evidence_ref":
        return activity.evidence_ref
    if name == "account":
        return activity.account_number
    if name == "day":
        return day
    if name == "occurred_minute":
        return activity.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    if name == "tier":
        return activity.tier
    raise FingerprintError(f"fingerprint field {name!r} is not one of {', '.join(sorted(FIELDS))}")


def fingerprint_columns(
    specs: Mapping[str, FingerprintSpec], keys: FingerprintKeys, activities: Iterable[Activity]
) -> FingerprintColumns:
    """Each activity's fingerprint under its behaviour's spec (DEFAULT_SPEC for one the catalog lacks) and the key
    of its day. A batch's few days are looked up once each."""
    digests: list[bytes] = []
    key_ids: list[str] = []
    days: list[str] = []
    key_of: dict[date, tuple[KeyedHash, str, str]] = {}
    for activity in activities:
        known = key_of.get(activity.day)
        if known is None:
            key = keys.key_for(activity.day)
            known = key_of[activity.day] = (keys.hash_for(key), key.key_id, activity.day.isoformat())
        keyed, key_id, day = known
        text = activity_text(specs.get(activity.behaviour, DEFAULT_SPEC), activity, day)
        digests.append(keyed.digest(text.encode()))
        key_ids.append(key_id)
        days.append(day)
    return FingerprintColumns(digests, key_ids, days)


def fingerprint(spec: FingerprintSpec, keys: FingerprintKeys, activity: Activity) -> Fingerprint:
    """One activity's fingerprint (a batch of one)."""
    columns = fingerprint_columns({activity.behaviour: spec}, keys, [activity])
    return Fingerprint(columns.digests[0], columns.key_ids[0], activity.day)
