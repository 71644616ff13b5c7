"""Service identities on a real server: every (caller, method) pair of the access table, tokens that prove nothing,
the verified caller handed to the servicer, and the one way to open a channel."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.descriptor import ServiceDescriptor

from carbon.identity.v1 import identity_service_pb2
from carbon.incentives.v1 import incentives_service_pb2
from carbon.ingest.v1 import ingest_service_pb2
from carbon.ledger.v1 import ledger_service_pb2
from carbon.rewards.v1 import rewards_service_pb2
from service_kit import access, identities
from service_kit.access import Caller, current_caller
from service_kit.identities import TOKEN_METADATA_KEY, TokenMinter, TokenVerifier, TrustBundle
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from tests.service_identities import TRUST

ROOT = Path(__file__).resolve().parents[2]
REGION, OTHER = "330000", "110000"
SERVICES: list[ServiceDescriptor] = [
    identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"],
    ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"],
    ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"],
    rewards_service_pb2.DESCRIPTOR.services_by_name["RewardsService"],
    incentives_service_pb2.DESCRIPTOR.services_by_name["IncentivesService"],
]
METHODS = {f"/{service.full_name}/{method.name}": method for service in SERVICES for method in service.methods}
CALLERS = identities.all_identities([REGION, OTHER])


class Recorder:
    """Answers every method of the four regional services with an empty message, noting who called."""

    def __init__(self) -> None:
        self.seen: list[Caller] = []

    def unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.seen.append(current_caller())
        return b""

    def streamed(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        for _ in requests:
            pass
        self.seen.append(current_caller())
        return b""

    def registration(self, service: ServiceDescriptor) -> Registration:
        handlers: dict[str, grpc.RpcMethodHandler] = {}  # type: ignore[type-arg]
        for method in service.methods:
            if method.client_streaming:
                handlers[method.name] = grpc.stream_unary_rpc_method_handler(self.streamed)
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(self.unary)
        generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
        return Registration(
            lambda _servicer, server: server.add_generic_rpc_handlers((generic,)), self, service.full_name
        )


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def server(recorder: Recorder) -> Iterator[RunningServer]:
    """One process serving the four regional services of 330000 (as far as access goes, they are alike)."""
    settings = TRUST.server(Settings(service="ledger_svc", region_code=REGION, max_workers=4))
    running = start_server(settings, [recorder.registration(service) for service in SERVICES])
    yield running
    running.stop()


def call(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """Calls `method` with empty bytes as its request (every message may be empty on the wire)."""
    if METHODS[method].client_streaming:
        return channel.stream_unary(method, None, None)(iter([b""]), metadata=metadata, timeout=5)
    return channel.unary_unary(method, None, None)(b"", metadata=metadata, timeout=5)


def refusal(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> tuple[str, str]:
    try:
        call(channel, method, metadata)
    except grpc.RpcError as error:
        details = error_details(error)
        return details.code.name, details.reason
    return "OK", ""


def test_every_method_of_the_regional_services_is_in_the_table_and_nothing_else() -> None:
    assert set(access.ACCESS) == set(METHODS)


def test_every_caller_method_pair_is_answered_as_the_table_says(server: RunningServer) -> None:
    """Own region by kind, the national services by name, nobody from another region."""
    for caller in CALLERS:
        parsed = identities.parse(caller)
        with TRUST.channel(server.address, caller) as channel:
            for method, kinds in access.ACCESS.items():
                in_scope = parsed.is_national or parsed.region_code == REGION
                expected = (
                    ("OK", "") if in_scope and parsed.kind in kinds else ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED")
                )
                assert refusal(channel, method) == expected, (caller, method)


@pytest.mark.parametrize(
    ("caller", "method", "allowed"),
    [
        (identities.regional(REGION, "ingest"), "/carbon.ledger.v1.LedgerService/PostCredits", True),
        (identities.OPS_API, "/carbon.ledger.v1.LedgerService/PostCredits", True),
        (identities.regional(REGION, "rewards"), "/carbon.ledger.v1.LedgerService/PostCredits", False),
        (identities.regional(OTHER, "ingest"), "/carbon.ledger.v1.LedgerService/PostCredits", False),
        (identities.GATEWAY, "/carbon.ledger.v1.LedgerService/PostCredits", False),
        (identities.regional(REGION, "rewards"), "/carbon.ledger.v1.LedgerService/Hold", True),
        (identities.GATEWAY, "/carbon.ledger.v1.LedgerService/CommitHold", True),
        (identities.regional(REGION, "ingest"), "/carbon.ledger.v1.LedgerService/ReleaseHold", False),
        (identities.OPS_API, "/carbon.ledger.v1.LedgerService/Hold", False),
        (identities.regional(REGION, "ingest"), "/carbon.identity.v1.IdentityService/CheckConsentColumns", True),
        (identities.GATEWAY, "/carbon.identity.v1.IdentityService/CheckConsentColumns", False),
        (identities.GATEWAY, "/carbon.ingest.v1.IngestService/RegisterPartner", False),
        (identities.GATEWAY, "/carbon.ingest.v1.IngestService/RotatePartnerSecret", False),
        (identities.regional(REGION, "ingest"), "/carbon.ingest.v1.IngestService/CreateRuleVersion", False),
        (identities.OPS_API, "/carbon.ingest.v1.IngestService/CreateRuleVersion", True),
        (identities.GATEWAY, "/carbon.identity.v1.IdentityService/OpenAccount", True),
        (identities.regional(REGION, "ingest"), "/carbon.identity.v1.IdentityService/OpenAccount", False),
        (identities.regional(OTHER, "ledger"), "/carbon.ledger.v1.LedgerService/GetBalance", False),
    ],
)
def test_the_rules_of_the_issue_hold(server: RunningServer, caller: str, method: str, allowed: bool) -> None:
    with TRUST.channel(server.address, caller) as channel:
        assert refusal(channel, method) == (("OK", "") if allowed else ("PERMISSION_DENIED", "CALLER_NOT_ALLOWED"))


def test_a_refusal_names_the_caller_and_the_method(server: RunningServer) -> None:
    caller = identities.regional(OTHER, "ingest")
    with TRUST.channel(server.address, caller) as channel, pytest.raises(grpc.RpcError) as refused:
        call(channel, "/carbon.ledger.v1.LedgerService/PostCredits")
    details = error_details(refused.value)
    assert details.metadata == {"caller": caller, "method": "/carbon.ledger.v1.LedgerService/PostCredits"}
    assert details.domain == "ledger.carbon-account"


def _forged(claims: dict[str, Any], key: Ed25519PrivateKey | None = None) -> str:
    signer = key or Ed25519PrivateKey.generate()
    return jwt.encode(claims, signer, algorithm="EdDSA")


def _claims(subject: str = identities.GATEWAY, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": subject, "aud": identities.TRUST_DOMAIN, "iat": now, "exp": now + 300, **changes}


def test_calls_without_a_valid_token_are_unauthenticated_with_the_reason(server: RunningServer) -> None:
    own_key = identities.load_private_key(TRUST.key_file(identities.GATEWAY))
    ingest_key = identities.load_private_key(TRUST.key_file(identities.regional(REGION, "ingest")))
    method = "/carbon.ledger.v1.LedgerService/GetBalance"
    tokens = {
        "someone else's key": _forged(_claims(), ingest_key),
        "a key nobody trusts": _forged(_claims()),
        "expired": _forged(_claims(exp=int(time.time()) - 600), own_key),
        "another audience": _forged(_claims(aud="elsewhere"), own_key),
        "unknown subject": _forged(_claims("spiffe://carbon-account/national/intruder"), own_key),
        "not a token": "let-me-in",
    }
    with grpc.insecure_channel(server.address) as channel:
        assert refusal(channel, method) == ("UNAUTHENTICATED", "SERVICE_IDENTITY_MISSING")
        for what, token in tokens.items():
            assert refusal(channel, method, ((TOKEN_METADATA_KEY, token),)) == (
                "UNAUTHENTICATED",
                "SERVICE_TOKEN_INVALID",
            ), what
        assert refusal(channel, method, ((TOKEN_METADATA_KEY, _forged(_claims(), own_key)),)) == ("OK", "")


def test_health_and_reflection_are_open(server: RunningServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_forwarded_callers_count_only_from_the_gateway_and_the_ops_api(
    server: RunningServer, recorder: Recorder
) -> None:
    forwarded = (("x-carbon-caller", "alipay-zj"), ("x-carbon-caller-platform", "alipay"))
    method = "/carbon.identity.v1.IdentityService/BatchResolveAccounts"
    for caller in (identities.GATEWAY, identities.OPS_API, identities.regional(REGION, "ingest")):
        with TRUST.channel(server.address, caller) as channel:
            call(channel, method, forwarded)
    assert recorder.seen[-3:] == [
        Caller(identities.GATEWAY, "alipay-zj", "alipay"),
        Caller(identities.OPS_API, "alipay-zj", "alipay"),
        Caller(identities.regional(REGION, "ingest")),
    ]
    assert current_caller() == access.UNIDENTIFIED  # outside a call


def test_the_gateway_records_a_proved_identity_but_leaves_refusing_to_its_front_door() -> None:
    recorder = Recorder()
    running = start_server(
        TRUST.server(Settings(service="gateway", region_code="000000")),
        [recorder.registration(service) for service in SERVICES],
    )
    try:
        with grpc.insecure_channel(running.address) as channel:
            call(channel, "/carbon.ledger.v1.LedgerService/PostCredits")
        with TRUST.channel(running.address, identities.OPS_API) as channel:
            call(channel, "/carbon.ledger.v1.LedgerService/Hold")
    finally:
        running.stop()
    assert recorder.seen == [access.UNIDENTIFIED, Caller(identities.OPS_API)]


def test_a_token_is_minted_once_and_reused_until_near_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519PrivateKey.generate()
    minter = TokenMinter(identities.GATEWAY, key, lifetime_s=120)
    now = time.time()
    first = minter.token()
    assert all(minter.token() == first for _ in range(100))
    claims = jwt.decode(first, key.public_key(), algorithms=["EdDSA"], audience=identities.TRUST_DOMAIN)
    assert claims["sub"] == identities.GATEWAY and claims["exp"] - claims["iat"] == 120
    monkeypatch.setattr(time, "time", lambda: now + 61)  # within a minute of expiry: a new one
    renewed = minter.token()
    assert renewed != first
    assert jwt.decode(renewed, options={"verify_signature": False})["exp"] == int(now + 61) + 120


def test_a_verified_token_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier(TrustBundle({identities.GATEWAY: key.public_key()}))
    token = TokenMinter(identities.GATEWAY, key).token()
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    assert [verifier.verify(token) for _ in range(100)] == [identities.GATEWAY] * 100
    assert len(decoded) == 2  # once without, once with the signature: the first time only


def test_a_rotated_key_is_picked_up_from_the_bundle_file(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = tmp_path / "bundle.json"
    TrustBundle({identities.OPS_API: old.public_key()}).write(path)
    verifier = TokenVerifier.from_file(path, recheck_s=0)
    old_token = TokenMinter(identities.OPS_API, old).token()
    assert verifier.verify(old_token) == identities.OPS_API
    TrustBundle({identities.OPS_API: new.public_key()}).write(path)
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new modification time even on a coarse clock
    assert verifier.verify(TokenMinter(identities.OPS_API, new).token()) == identities.OPS_API
    with pytest.raises(identities.TokenInvalid):
        verifier.verify(old_token)  # accepted before, refused once its key left the bundle


def test_ids_outside_the_trust_domain_or_of_no_service_are_refused() -> None:
    for bad in (
        "spiffe://elsewhere/national/gateway",
        "spiffe://carbon-account/national/mint",
        "spiffe://carbon-account/region/33000/ledger",
        "spiffe://carbon-account/region/330000/printer",
    ):
        with pytest.raises(identities.IdentityError):
            identities.parse(bad)
    assert identities.identity_of_service("ingest_svc", "330000") == "spiffe://carbon-account/region/330000/ingest"


def test_every_service_channel_is_opened_by_the_kit() -> None:
    """grpc.insecure_channel / secure_channel appear only in service_kit/channels.py: every other channel carries
    this process's identity (and its TLS, when configured)."""
    packages = [
        "service_kit",
        "identity_svc",
        "ingest_svc",
        "ledger_svc",
        "rewards_svc",
        "incentives_svc",
        "gateway",
        "ops_api",
        "deploy",
    ]
    offenders = [
        str(path.relative_to(ROOT))
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if re.search(r"grpc\.(insecure|secure)_channel\(", path.read_text(encoding="utf-8"))
        and path.relative_to(ROOT).as_posix() != "service_kit/channels.py"
    ]
    assert offenders == []


def test_docs_access_md_is_the_table_in_the_code() -> None:
    written = (ROOT / "docs" / "access.md").read_text(encoding="utf-8")
    assert written == access.render_markdown(), "regenerate: python -m service_kit.access > docs/access.md"
