"""Resident authorizations: issued only to the resident's own platform (through the gateway) or to counter staff
(through the ops API), for an open account; the token verifies with the region's public JWKS and carries exactly the
claims of the contract; a retry gets the same token while it is valid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import Engine, func, select

from identity_svc import store
from identity_svc.domain.closing import PointsDisposition
from identity_svc.domain.requesters import UNIDENTIFIED, Requester
from identity_svc.domain.resident_authorizations import (
    AuthorizationRequest,
    ResidentOperation,
    validate_authorization_request,
)
from identity_svc.server import IdentityServices, build_services
from service_kit.accounts import new_account_number
from service_kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from service_kit.settings import Settings
from tests.identity.conftest import ServicesFactory
from tests.identity.identity_helpers import (
    INGEST,
    ISSUER,
    OPS_API,
    VIA_ALIPAY,
    VIA_WECHAT,
    ZHEJIANG_ID,
    FakeClock,
    opening,
    public_jwks,
    verified_claims,
    write_signing_key,
)

BEIJING_ACCOUNT = new_account_number("110000")
TRANSFER_CLAIMS = {"iss", "aud", "sub", "op", "amount_points", "to_account", "request_id", "iat", "exp", "jti"}


@pytest.fixture
def clock() -> FakeClock:
    """Now, so that the tokens verify against the real clock as the gateway's would."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def account(services: IdentityServices) -> str:
    """An account whose resident uses Alipay."""
    return services.accounts.open_account(opening(), VIA_ALIPAY)[0].account_number


def _transfer(account: str, request_id: str = "xfer-1", amount: int = 1200, staff_id: str = "") -> AuthorizationRequest:
    return validate_authorization_request(
        request_id=request_id,
        account_number=account,
        operation=int(ResidentOperation.CROSS_REGION_TRANSFER),
        amount_points=amount,
        to_account=BEIJING_ACCOUNT,
        reward_id="",
        quantity=0,
        staff_id=staff_id,
    )


def _issued_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(store.tables.resident_authorizations)).scalar_one())


def test_a_platform_without_a_binding_on_the_account_is_refused(
    services: IdentityServices, account: str, engine: Engine
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        services.resident_authorizations.issue(_transfer(account), VIA_WECHAT)
    assert (refused.value.reason, refused.value.metadata) == ("PLATFORM_NOT_BOUND", {"platform": "wechat_pay"})
    assert _issued_count(engine) == 0


def test_the_residents_own_platform_gets_a_token_with_exactly_the_contracts_claims(
    services: IdentityServices, account: str, signing_key_file: Path, clock: FakeClock
) -> None:
    issued = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)

    claims = verified_claims(issued.token, public_jwks(signing_key_file))
    assert set(claims) == TRANSFER_CLAIMS | {"platform"}
    assert {key: claims[key] for key in ("iss", "aud", "sub", "op", "amount_points", "to_account", "request_id")} == {
        "iss": ISSUER,
        "aud": "carbon-account/gateway",
        "sub": account,
        "op": "cross_region_transfer",
        "amount_points": 1200,
        "to_account": BEIJING_ACCOUNT,
        "request_id": "xfer-1",
    }
    assert claims["platform"] == "alipay" and claims["jti"] == issued.token_id
    assert claims["exp"] - claims["iat"] == 300 and claims["iat"] == int(clock.now.timestamp())
    assert issued.expires_at == datetime.fromtimestamp(claims["exp"], UTC)
    assert jwt.get_unverified_header(issued.token) == {"alg": "EdDSA", "typ": "JWT", "kid": ISSUER}


def test_counter_staff_get_a_token_that_names_them_as_the_actor(
    services: IdentityServices, account: str, signing_key_file: Path
) -> None:
    issued = services.resident_authorizations.issue(_transfer(account, staff_id="staff-0042"), OPS_API)

    claims = verified_claims(issued.token, public_jwks(signing_key_file))
    assert set(claims) == TRANSFER_CLAIMS | {"act"}
    assert claims["act"] == {"sub": "staff-0042"}


def test_the_ops_api_must_name_the_staff_member(services: IdentityServices, account: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        services.resident_authorizations.issue(_transfer(account), OPS_API)
    assert refused.value.field == "staff_id"


def test_a_platform_cannot_pose_as_counter_staff(services: IdentityServices, account: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        services.resident_authorizations.issue(_transfer(account, staff_id="staff-0042"), VIA_ALIPAY)
    assert refused.value.field == "staff_id"


@pytest.mark.parametrize(
    "requester",
    [INGEST, UNIDENTIFIED, Requester(INGEST.service, caller="alipay-zj", platform="alipay")],
    ids=["ingest", "no identity", "ingest forwarding a platform"],
)
def test_no_other_caller_obtains_one(services: IdentityServices, account: str, requester: Requester) -> None:
    with pytest.raises(PermissionDenied) as refused:
        services.resident_authorizations.issue(_transfer(account, staff_id="s-1"), requester)
    assert refused.value.reason == "CALLER_CANNOT_AUTHORIZE"


def test_a_redemption_anywhere_binds_the_reward_and_quantity(
    services: IdentityServices, account: str, signing_key_file: Path
) -> None:
    request = validate_authorization_request(
        request_id="redeem-9", account_number=account, operation=int(ResidentOperation.REDEEM_ANYWHERE),
        amount_points=6000, to_account=BEIJING_ACCOUNT, reward_id="bj-bus-pass", quantity=0, staff_id="",
    )  # fmt: skip
    claims = verified_claims(
        services.resident_authorizations.issue(request, VIA_ALIPAY).token, public_jwks(signing_key_file)
    )
    assert set(claims) == TRANSFER_CLAIMS | {"platform", "reward_id", "quantity"}
    assert (claims["op"], claims["reward_id"], claims["quantity"]) == ("redeem_anywhere", "bj-bus-pass", 1)


def test_a_retry_gets_the_same_token_while_it_is_valid(
    services: IdentityServices, account: str, clock: FakeClock, engine: Engine
) -> None:
    first = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)
    clock.advance(minutes=4)
    again = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)
    assert again == first
    assert _issued_count(engine) == 1


def test_a_retry_after_expiry_gets_a_fresh_token_for_the_same_operation(
    services: IdentityServices, account: str, clock: FakeClock
) -> None:
    first = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)
    clock.advance(minutes=5)
    fresh = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)

    assert fresh.token_id != first.token_id and fresh.expires_at == first.expires_at + timedelta(minutes=5)
    old, new = (_unverified(token) for token in (first.token, fresh.token))
    assert {key: value for key, value in old.items() if key not in ("iat", "exp", "jti")} == {
        key: value for key, value in new.items() if key not in ("iat", "exp", "jti")
    }


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": 1201},
        {"requester": Requester(VIA_ALIPAY.service, caller="alipay-zj", platform="jd")},
    ],
    ids=["another amount", "another platform"],
)
def test_a_request_id_reused_for_another_request_is_refused(
    services: IdentityServices, account: str, changed: dict[str, Any]
) -> None:
    services.accounts.open_account(opening("r2", platform="jd", user="jd-1"))
    services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)
    with pytest.raises(AlreadyExists) as refused:
        services.resident_authorizations.issue(
            _transfer(account, amount=changed.get("amount", 1200)), changed.get("requester", VIA_ALIPAY)
        )
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_the_same_request_id_on_another_account_is_another_authorization(
    services: IdentityServices, account: str
) -> None:
    other = services.accounts.open_account(opening("r2", id_number=ZHEJIANG_ID, user="u-2"), VIA_ALIPAY)[0]
    first = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)
    second = services.resident_authorizations.issue(_transfer(other.account_number), VIA_ALIPAY)
    assert first.token_id != second.token_id


def test_a_closed_or_unknown_account_gets_none(services: IdentityServices, account: str) -> None:
    services.closing.close("c1", account, int(PointsDisposition.NONE), "resident")
    with pytest.raises(FailedPrecondition) as closed:
        services.resident_authorizations.issue(_transfer(account), OPS_API)
    assert closed.value.reason == "ACCOUNT_CLOSED"
    with pytest.raises(NotFound):
        services.resident_authorizations.issue(_transfer(new_account_number("330000")), VIA_ALIPAY)


def test_a_token_does_not_verify_under_another_regions_key(
    services: IdentityServices, account: str, tmp_path: Path
) -> None:
    token = services.resident_authorizations.issue(_transfer(account), VIA_ALIPAY).token
    with pytest.raises(jwt.InvalidSignatureError):
        verified_claims(token, public_jwks(write_signing_key(tmp_path / "other.pem")))


def test_without_a_signing_key_issuance_is_unavailable(
    make_services: ServicesFactory, engine: Engine, account: str
) -> None:
    unkeyed = build_services(Settings(service="identity_svc"), engine, keys=make_services().accounts.keys)
    with pytest.raises(Unavailable) as refused:
        unkeyed.resident_authorizations.issue(_transfer(account), VIA_ALIPAY)
    assert refused.value.reason == "RESIDENT_AUTHORIZATION_NOT_CONFIGURED"


def _unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
