"""Partner batch signatures: HMAC-SHA256 over a documented, language-neutral canonical encoding.

Ingest verifies them; partner clients (the ops API's community counter, `carbon up`, tests, benchmarks) make them.
This is the reference encoding; ingest's hot path has a faster one that a test holds byte-for-byte equal.

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

from carbon.ingest.v1 import ingest_service_pb2 as pb

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


def signed_event(message: pb.Event) -> SignedEvent:
    """The signed fields of one carbon.ingest.v1.Event."""
    ref = message.account
    which = ref.WhichOneof("ref") or ""
    parts: tuple[str, ...] = ()
    if which == "account_number":
        parts = (ref.account_number,)
    elif which == "binding":
        parts = (ref.binding.platform, ref.binding.platform_user_id)
    elif which == "phone_number":
        parts = (ref.phone_number,)
    return SignedEvent(
        event_id=message.event_id,
        account_kind=which,
        account_parts=parts,
        behaviour=message.behaviour,
        quantity_milli=message.quantity_milli,
        occurred_seconds=message.occurred_at.seconds,
        occurred_nanos=message.occurred_at.nanos,
        region_code=message.region_code,
        evidence_ref=message.evidence_ref,
        tier=message.tier,
    )


def request_canonical_bytes(request: pb.SubmitEventsRequest) -> bytes:
    """The canonical bytes a SubmitEventsRequest's signature covers."""
    return canonical_bytes(request.partner_id, request.batch_id, map(signed_event, request.events))


def sign_request(request: pb.SubmitEventsRequest, key_id: str, secret: str) -> pb.SubmitEventsRequest:
    """Sets key_id and signature in place (what a partner does before sending) and returns the request."""
    request.key_id = key_id
    request.signature = sign(secret.encode("utf-8"), request_canonical_bytes(request))
    return request
