"""Partner batch signatures: HMAC-SHA256 over a documented, language-neutral canonical encoding.

Canonical bytes of (partner_id, batch_id, events), all integers big-endian:
    b"carbon.ingest.v1/batch\\n"
    str(partner_id) str(batch_id) u32(number of events)
    per event, in order:
        str(event_id)
        u8(account kind: 0 none, 1 account_number, 2 binding, 3 phone_number) then
            1: str(account_number) | 2: str(platform) str(platform_user_id) | 3: str(phone_number)
        str(behaviour) i64(quantity_milli) i64(occurred_at.seconds) u32(occurred_at.nanos)
        str(region_code) str(evidence_ref) str(tier)
where str(s) = u32(byte length of UTF-8) + UTF-8 bytes. An absent occurred_at encodes as seconds 0, nanos 0.
The signature is lowercase hex of HMAC-SHA256(secret bytes, canonical bytes); it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass

DOMAIN_TAG = b"carbon.ingest.v1/batch\n"
_KINDS = {"": 0, "account_number": 1, "binding": 2, "phone_number": 3}


@dataclass(frozen=True)
class SignedEvent:
    """The fields of carbon.ingest.v1.Event the signature covers (all of them)."""

    event_id: str
    account_kind: str
    account_parts: tuple[str, ...]
    behaviour: str
    quantity_milli: int
    occurred_seconds: int
    occurred_nanos: int
    region_code: str
    evidence_ref: str
    tier: str


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


def canonical_bytes(partner_id: str, batch_id: str, events: Iterable[SignedEvent]) -> bytes:
    items = list(events)
    parts = [DOMAIN_TAG, _str(partner_id), _str(batch_id), struct.pack(">I", len(items))]
    for event in items:
        parts.append(_str(event.event_id))
        parts.append(struct.pack(">B", _KINDS[event.account_kind]))
        parts.extend(_str(part) for part in event.account_parts)
        parts.append(_str(event.behaviour))
        parts.append(struct.pack(">qqI", event.quantity_milli, event.occurred_seconds, event.occurred_nanos))
        parts.append(_str(event.region_code))
        parts.append(_str(event.evidence_ref))
        parts.append(_str(event.tier))
    return b"".join(parts)


def sign(secret: bytes, canonical: bytes) -> str:
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def signature_matches(secret: bytes, canonical: bytes, signature_hex: str) -> bool:
    expected = sign(secret, canonical)
    return hmac.compare_digest(expected.encode("ascii"), signature_hex.strip().lower().encode("ascii", "replace"))
