"""The embedded system's service identities: a key per process and the trust bundle, generated into the data folder
(identities/), and with `carbon up --mtls` a CA and a certificate per process whose URI SAN is its SPIFFE ID
(identities/tls/). Each child gets the variables naming its own; the supervisor itself calls as the ops API (it
registers the community partner and probes health), as an operator on the same machine would.

Keys are kept across starts (a restarted system keeps its identities); certificates are issued anew at each mTLS
start, by a new CA, so nothing signed by a CA key lies around between runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from service_kit import identities
from service_kit.pki import CA_FILE, CertificateAuthority
from service_kit.settings import Settings

IDENTITIES_DIR = "identities"
BUNDLE_FILE = "trust-bundle.json"
TLS_DIR = "tls"


@dataclass(frozen=True)
class EmbeddedTrust:
    folder: Path
    mtls: bool

    @property
    def bundle_file(self) -> Path:
        return self.folder / BUNDLE_FILE

    def _tls_files(self, spiffe_id: str) -> tuple[Path, Path]:
        stem = identities.key_file_name(spiffe_id).removesuffix(".key")
        return self.folder / TLS_DIR / f"{stem}.pem", self.folder / TLS_DIR / f"{stem}.key"

    def env(self, spiffe_id: str) -> dict[str, str]:
        """The variables that make a child process `spiffe_id` and let it check who calls it."""
        env = {
            "CARBON_SERVICE_IDENTITY": spiffe_id,
            "CARBON_SERVICE_KEY_FILE": str(self.folder / identities.key_file_name(spiffe_id)),
            "CARBON_TRUST_BUNDLE_FILE": str(self.bundle_file),
        }
        if self.mtls:
            cert, key = self._tls_files(spiffe_id)
            env.update(
                {
                    "CARBON_TLS_CERT_FILE": str(cert),
                    "CARBON_TLS_KEY_FILE": str(key),
                    "CARBON_TLS_CA_FILE": str(self.folder / TLS_DIR / CA_FILE),
                }
            )
        return env

    def settings(self, spiffe_id: str = identities.OPS_API) -> Settings:
        """Settings of a caller that is `spiffe_id` (by default the ops API: the operator's tools), for
        open_channel."""
        return Settings.from_env("embedded-operator", self.env(spiffe_id))


def prepare(data_dir: Path, region_codes: Iterable[str], mtls: bool) -> EmbeddedTrust:
    """Keys for every process of these regions (kept when already there), the bundle, and for mTLS the certificates."""
    trust = EmbeddedTrust(data_dir.resolve() / IDENTITIES_DIR, mtls)
    ids = identities.all_identities(region_codes)
    identities.generate_keys(trust.folder, ids).write(trust.bundle_file)
    tls = trust.folder / TLS_DIR
    shutil.rmtree(tls, ignore_errors=True)
    if mtls:
        ca = CertificateAuthority.create()
        ca.write(tls)
        for spiffe_id in ids:
            ca.issue(spiffe_id, tls, trust._tls_files(spiffe_id)[0].stem)
    return trust


def load(data_dir: Path) -> EmbeddedTrust | None:
    """What the last `carbon up` from this folder prepared (None if it prepared nothing), for `carbon status` and
    for tools that call the running system."""
    folder = data_dir.resolve() / IDENTITIES_DIR
    if not (folder / BUNDLE_FILE).exists():
        return None
    return EmbeddedTrust(folder, (folder / TLS_DIR / CA_FILE).exists())
