"""Mutual TLS on a real server: a platform with a certificate from our CA gets in and is known by name; others don't."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import identities
from service_kit.channels import open_channel
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from service_kit.tls import peer_common_name

LEDGER = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    common_name: str,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    issuer: x509.Name | None,
    *,
    ca: bool = False,
    spiffe_id: str = "",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer or _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        if spiffe_id:
            names.append(x509.UniformResourceIdentifier(spiffe_id))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _write(folder: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
    key_path, cert_path = folder / f"{stem}.key", folder / f"{stem}.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


class WhoAmI(ledger_service_pb2_grpc.LedgerServiceServicer):
    def GetBalance(
        self, request: ledger_service_pb2.GetBalanceRequest, context: grpc.ServicerContext
    ) -> ledger_service_pb2.GetBalanceResponse:
        return ledger_service_pb2.GetBalanceResponse(
            balance=ledger_service_pb2.Balance(account=peer_common_name(context))
        )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Settings]:
    ca_key, ca_cert = _issue("carbon-test-ca", None, None, ca=True)
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server = _write(tmp_path, "server", *_issue("ledger-330000", ca_key, ca_cert.subject))
    platform = _write(
        tmp_path, "platform", *_issue("platform-110000", ca_key, ca_cert.subject, spiffe_id=identities.GATEWAY)
    )
    # Certificates from our CA that name no identity allowed here: none at all, and another region's ingest.
    anonymous = _write(tmp_path, "anonymous", *_issue("anonymous", ca_key, ca_cert.subject))
    other_region = identities.regional("110000", "ingest")
    outsider = _write(tmp_path, "outsider", *_issue("ingest-110000", ca_key, ca_cert.subject, spiffe_id=other_region))
    other_ca_key, other_ca = _issue("someone-else", None, None, ca=True)
    stranger = _write(tmp_path, "stranger", *_issue("platform-110000", other_ca_key, other_ca.subject))
    ca = str(ca_path)
    return {
        "server": Settings(service="ledger_svc", tls_cert_file=server[0], tls_key_file=server[1], tls_ca_file=ca),
        "platform": Settings(service="gateway", tls_cert_file=platform[0], tls_key_file=platform[1], tls_ca_file=ca),
        "no_certificate": Settings(service="gateway", tls_ca_file=ca),
        "anonymous": Settings(service="gateway", tls_cert_file=anonymous[0], tls_key_file=anonymous[1], tls_ca_file=ca),
        "outsider": Settings(service="ingest_svc", tls_cert_file=outsider[0], tls_key_file=outsider[1], tls_ca_file=ca),
        "stranger": Settings(service="gateway", tls_cert_file=stranger[0], tls_key_file=stranger[1], tls_ca_file=ca),
    }


@pytest.fixture
def server(pki: dict[str, Settings]) -> Iterator[RunningServer]:
    running = start_server(
        pki["server"],
        [Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, WhoAmI(), LEDGER)],  # type: ignore[abstract]
    )
    yield running
    running.stop()


def _ask(settings: Settings, server: RunningServer) -> str:
    with open_channel(f"localhost:{server.port}", settings) as channel:
        response = ledger_service_pb2_grpc.LedgerServiceStub(channel).GetBalance(
            ledger_service_pb2.GetBalanceRequest(account="x"), timeout=5
        )
    return response.balance.account


def test_a_platform_with_a_certificate_from_our_ca_is_known_by_its_name(
    pki: dict[str, Settings], server: RunningServer
) -> None:
    assert _ask(pki["platform"], server) == "platform-110000"


@pytest.mark.parametrize("caller", ["no_certificate", "stranger"])
def test_a_caller_without_a_certificate_from_our_ca_is_refused(
    pki: dict[str, Settings], server: RunningServer, caller: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _ask(pki[caller], server)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("caller", "code", "reason"),
    [
        ("anonymous", grpc.StatusCode.UNAUTHENTICATED, "SERVICE_IDENTITY_MISSING"),
        ("outsider", grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED"),
    ],
)
def test_under_mtls_the_certificates_identity_decides_not_merely_the_ca(
    pki: dict[str, Settings], server: RunningServer, caller: str, code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _ask(pki[caller], server)
    details = error_details(caught.value)
    assert (details.code, details.reason) == (code, reason)


def test_stop_hooks_run_after_the_server_drains() -> None:
    stopped: list[str] = []
    running = start_server(
        Settings(service="ledger_svc"),
        [
            Registration(
                ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server,
                WhoAmI(),  # type: ignore[abstract]
                LEDGER,
                on_stop=lambda: stopped.append("recovery thread"),
            )
        ],
    )
    assert stopped == []
    running.stop()
    assert stopped == ["recovery thread"]
