"""The resident's own say: a cross-region transfer moves points only with the resident's authorization of exactly that
transfer, signed by the source account's region; every other token is refused with its reason and nothing moves; who
asked (the platform, or counter staff) is recorded on the transfer."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carbon.gateway.v1 import gateway_service_pb2 as gw
from gateway.domain.resident_authorizations import AUDIENCE, CROSS_REGION_TRANSFER, Operation, authorized_by, issuer_of
from gateway.service.resident_authorizations import ResidentAuthorizations
from service_kit.errors import PermissionDenied
from service_kit.server import RunningServer
from tests.gateway.federation import Federation, metadata, refusal


def create(fed: Federation, transfer_id: str, source: str, target: str, points: int, token: str) -> Any:
    request = gw.CreateCrossRegionTransferRequest(
        transfer_id=transfer_id,
        from_account=source,
        to_account=target,
        amount_points=points,
        resident_authorization=token,
    )
    return fed.gateway().CreateCrossRegionTransfer(request, metadata=metadata("zj"), timeout=30).transfer


def test_without_the_residents_authorization_of_this_transfer_nothing_moves(
    federation: Federation, gateway: RunningServer
) -> None:
    zj, bj = federation.open_person(["330000", "110000"])
    federation.earn("330000", zj, 1_000)
    right = federation.authorize(CROSS_REGION_TRANSFER, zj, bj, "t1", 300)
    now = int(time.time())
    expired = federation.authorize(CROSS_REGION_TRANSFER, zj, bj, "t1", 300, iat=now - 900, exp=now - 600)
    other_region = jwt.encode(
        jwt.decode(right, options={"verify_signature": False}),
        federation.resident_keys["110000"],
        algorithm="EdDSA",
        headers={"kid": "spiffe://carbon-account/region/330000/identity"},
    )
    wrong_issuer = jwt.encode(
        jwt.decode(right, options={"verify_signature": False}),
        federation.resident_keys["110000"],
        algorithm="EdDSA",
        headers={"kid": "spiffe://carbon-account/region/110000/identity"},
    )
    cases = [
        ("", "RESIDENT_AUTHORIZATION_REQUIRED", ""),
        ("not-a-token", "RESIDENT_AUTHORIZATION_INVALID", "malformed"),
        (expired, "RESIDENT_AUTHORIZATION_EXPIRED", ""),
        (other_region, "RESIDENT_AUTHORIZATION_INVALID", "InvalidSignatureError"),
        (wrong_issuer, "RESIDENT_AUTHORIZATION_INVALID", "issuer"),
        (federation.authorize(CROSS_REGION_TRANSFER, zj, bj, "t1", 900), "RESIDENT_AUTHORIZATION_MISMATCH", ""),
        (federation.authorize(CROSS_REGION_TRANSFER, zj, bj, "t2", 300), "RESIDENT_AUTHORIZATION_MISMATCH", ""),
        (federation.authorize("redeem_anywhere", zj, bj, "t1", 300), "RESIDENT_AUTHORIZATION_MISMATCH", ""),
    ]
    for token, reason, problem in cases:
        code, got, meta = refusal(lambda token=token: create(federation, "t1", zj, bj, 300, token))  # type: ignore[misc]
        assert (code, got) == (grpc.StatusCode.PERMISSION_DENIED, reason), token
        assert meta["field"] == "resident_authorization"
        assert meta.get("problem", "") == problem
    assert federation.balance("330000", zj).total_points == 1_000
    assert federation.balance("110000", bj).total_points == 0

    moved = create(federation, "t1", zj, bj, 300, right)
    assert moved.state == gw.CROSS_REGION_TRANSFER_STATE_COMMITTED
    assert moved.authorized_by == "platform:alipay"
    assert federation.balance("110000", bj).total_points == 300


def test_counter_staff_acting_for_the_resident_are_recorded_as_such(
    federation: Federation, gateway: RunningServer
) -> None:
    zj, bj = federation.open_person(["330000", "110000"])
    federation.earn("330000", zj, 500)
    token = federation.authorize(CROSS_REGION_TRANSFER, zj, bj, "counter-1", 200, act={"sub": "zj-staff-7"})
    moved = create(federation, "counter-1", zj, bj, 200, token)
    assert moved.authorized_by == "staff:zj-staff-7"
    assert federation.get_transfer("counter-1").authorized_by == "staff:zj-staff-7"


def test_a_token_naming_both_a_platform_and_staff_or_neither_names_no_one() -> None:
    operation = Operation(CROSS_REGION_TRANSFER, "3300000000000001", "1100000000000001", "t", 5)
    claims = {**operation.expected_claims()}
    for extra in ({}, {"platform": "alipay", "act": {"sub": "s"}}, {"platform": ""}):
        with pytest.raises(PermissionDenied) as refused:
            authorized_by({**claims, **extra}, operation)
        assert refused.value.reason == "RESIDENT_AUTHORIZATION_MISMATCH"
    assert authorized_by({**claims, "platform": "alipay"}, operation) == "platform:alipay"


def _outcome(verify: Any) -> Any:
    try:
        return verify()
    except PermissionDenied as refused:
        return refused.reason, refused.metadata


def test_the_fast_reading_of_a_token_agrees_with_pyjwt_on_every_token() -> None:
    key = Ed25519PrivateKey.generate()
    issuer = issuer_of("330000")
    residents = ResidentAuthorizations({issuer: key.public_key()})
    operation = Operation(CROSS_REGION_TRANSFER, "3300000000000001", "1100000000000001", "t", 5)
    now = int(time.time())
    good: dict[str, Any] = {
        **operation.expected_claims(),
        "iss": issuer,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "platform": "alipay",
    }

    def signed(claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": issuer, "typ": "JWT", **header})

    valid = signed(good)
    head, body, signature = valid.split(".")
    numbered_key_id = jwt.utils.base64url_encode(json.dumps({"alg": "EdDSA", "kid": 5}).encode()).decode()
    tokens = [
        valid,
        f"{head}.{body}.{signature}=",
        f"{head}=.{body}.{signature}",
        f"{head}.{body}.{signature[:-2]}AA",
        f"{head}.{body}.{signature}.x",
        f"{head}.{body}",
        f"{head}..{signature}",
        signed({**good, "aud": [AUDIENCE, "other"]}),
        signed({**good, "aud": "other"}),
        signed({**good, "nbf": now - 10}),
        signed({**good, "nbf": now + 600}),
        signed({**good, "iat": float(now)}),
        signed({**good, "iat": True}),
        signed({**good, "iat": now + 600}),
        signed({**good, "iat": now + 20}),
        signed({**good, "exp": now - 20}),
        signed({**good, "exp": now - 40}),
        signed({**good, "exp": str(now + 300)}),
        signed({**good, "sub": 3}),
        signed({**good, "jti": 7}),
        signed({**good, "jti": "j"}),
        signed({**good, "iss": issuer_of("110000")}),
        signed({key: value for key, value in good.items() if key != "iat"}),
        signed(good, kid=issuer_of("110000")),
        f"{numbered_key_id}.{body}.{signature}",
        signed(good, crit=["exp"]),
        signed(good, cty="JWT"),
        jwt.encode(good, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": issuer}),
        jwt.encode(good, "s" * 32, algorithm="HS256", headers={"kid": issuer}),
    ]
    for token in tokens:
        quick = _outcome(lambda token=token: residents.check(token, operation))  # type: ignore[misc]
        by_pyjwt = _outcome(lambda token=token: authorized_by(residents._verified_by_pyjwt(token, issuer), operation))  # type: ignore[misc]
        assert quick == by_pyjwt, token
    assert residents._verified_quickly(valid, issuer) is not None
