"""A private certificate authority for mTLS between the services: one CA, and per service a certificate whose URI
SAN is its SPIFFE ID (the identity a server reads from the peer), valid for localhost.

`carbon up --mtls` and the e2e suite's mTLS run use it; a deployment brings certificates from its own CA with the
same shape (docs/adr/0011-service-identities-and-access-table.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service_kit.identities import write_private

# Certificates of an embedded system live as long as a development data folder plausibly does.
VALIDITY = dt.timedelta(days=365)
CA_FILE = "ca.pem"


@dataclass(frozen=True)
class Issued:
    """Where one service's certificate and key were written."""

    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, common_name: str = "carbon-account services CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def write(self, folder: Path) -> Path:
        path = folder / CA_FILE
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, spiffe_id: str, folder: Path, stem: str) -> Issued:
        """A certificate for `spiffe_id` (its URI SAN; localhost and 127.0.0.1 as names), written to folder/stem.*."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(spiffe_id),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(stem))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(folder / f"{stem}.pem", folder / f"{stem}.key")
        folder.mkdir(parents=True, exist_ok=True)
        issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_private(issued.key_file, _key_pem(key))
        return issued
