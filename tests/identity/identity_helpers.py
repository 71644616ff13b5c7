"""Shared test helpers for identity_svc: sample ID numbers, a movable clock, an in-memory ledger, openings, a granted
and a closed account, the callers identity hears from, and a signing key with its public JWKS."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from google.protobuf.timestamp_pb2 import Timestamp
from jwt.algorithms import OKPAlgorithm

from identity_svc.clients import PointsBalance
from identity_svc.domain.accounts import Binding, Channel, Opening
from identity_svc.domain.closing import PointsDisposition
from identity_svc.domain.consents import ConsentAction, DataCategory
from identity_svc.domain.real_name import id_check_char
from identity_svc.domain.requesters import Requester
from identity_svc.keys import KeyRing, load_signing_key
from identity_svc.server import IdentityServices
from service_kit.errors import FailedPrecondition
from service_kit.identities import GATEWAY, regional
from service_kit.identities import OPS_API as OPS_API_IDENTITY

# The GB 11643 sample and a few more numbers with valid check digits (computed, not real people).
SAMPLE_ID = "11010519491231002X"


def with_check_digit(first17: str) -> str:
    return first17 + id_check_char(first17)


ZHEJIANG_ID = with_check_digit("33010619900307123")
SHANGHAI_ID = with_check_digit("31011519550610456")


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 15, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class MemoryLedger:
    """Stands in for carbon.ledger.v1 where a test is not about the ledger."""

    balances: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    posted: dict[str, tuple[str, PointsDisposition, int]] = field(default_factory=dict)

    def balance(self, account_number: str) -> PointsBalance:
        return PointsBalance(self.balances.get(account_number, 0), self.held.get(account_number, 0))

    def dispose(
        self, transfer_id: str, account_number: str, disposition: PointsDisposition, amount_points: int
    ) -> None:
        if transfer_id in self.posted:
            return
        if self.balances.get(account_number, 0) < amount_points:
            raise FailedPrecondition("POINTS_DISPOSAL_FAILED", "insufficient points")
        self.balances[account_number] -= amount_points
        self.posted[transfer_id] = (account_number, disposition, amount_points)


def stamp(clock: FakeClock, **delta: float) -> Timestamp:
    """The clock's time moved by `delta`, as a protobuf Timestamp."""
    moment = Timestamp()
    moment.FromDatetime(clock.now + timedelta(**delta))
    return moment


def make_keys() -> KeyRing:
    return KeyRing(b"h" * 32, b"n" * 32, {"k1": os.urandom(32)}, "k1")


def opening(
    request_id: str = "open-1",
    *,
    id_number: str = SAMPLE_ID,
    name: str = "张三",
    phone: str = "13812345678",
    channel: Channel = Channel.INTERNET_PLATFORM,
    platform: str = "alipay",
    user: str = "2088001",
    centre: str = "",
    staff: str = "",
) -> Opening:
    community = channel is Channel.COMMUNITY_CENTRE
    return Opening(
        request_id=request_id,
        channel=channel,
        name=name,
        id_number=id_number,
        phone_number=phone,
        binding=None if community else Binding(platform, user),
        community_centre_id=centre if community else "",
        staff_id=staff if community else "",
    )


def granted_and_closed(services: IdentityServices) -> tuple[str, str]:
    """Two accounts: one with a TRANSIT grant from now on, one closed."""
    open_account = services.accounts.open_account
    account = open_account(opening())[0].account_number
    closed = open_account(opening("open-2", id_number=ZHEJIANG_ID, user="2088002"))[0].account_number
    services.consents.record(
        ConsentAction.GRANT, request_id="g1", account_number=account, category=int(DataCategory.TRANSIT),
        channel=int(Channel.INTERNET_PLATFORM), recorded_by="alipay", effective_at=None,
    )  # fmt: skip
    services.closing.close("c1", closed, int(PointsDisposition.NONE), "resident")
    return account, closed


# The gateway speaking for two platforms' callers, the ops API, and a regional service that may not ask for much.
VIA_ALIPAY = Requester(GATEWAY, caller="alipay-zj", platform="alipay")
VIA_WECHAT = Requester(GATEWAY, caller="wechat-pay-zj", platform="wechat_pay")
OPS_API = Requester(OPS_API_IDENTITY)
INGEST = Requester(regional("330000", "ingest"))
ISSUER = regional("330000", "identity")


def write_signing_key(path: Path) -> Path:
    """A fresh Ed25519 key as an unencrypted PEM file readable by its owner only, as carbon up writes them."""
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return path


def public_jwks(key_file: Path, kid: str = ISSUER) -> dict[str, Any]:
    """The JWKS the gateway would hold for this key: one OKP/Ed25519 public key whose kid is the issuer."""
    public = load_signing_key(key_file, "key").public_key()
    return {"keys": [{**OKPAlgorithm.to_jwk(public, as_dict=True), "kid": kid}]}


def verified_claims(token: str, jwks: dict[str, Any], issuer: str = ISSUER, **options: Any) -> dict[str, Any]:
    """What the gateway does with a token: the key by its kid, then signature, audience, issuer and expiry."""
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]].key
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["EdDSA"], audience="carbon-account/gateway", issuer=issuer, **options
    )
    return claims
