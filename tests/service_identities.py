"""Service identities for tests: keys and a trust bundle made once per test process, servers that verify against it,
and channels that present a named identity (or, for tests of behaviour rather than access, an identity the access
table allows for each method called).

    server_settings = TRUST.server(Settings(service="ledger_svc", region_code="330000"))
    with TRUST.channel(address, identities.GATEWAY) as channel: ...     # exactly this caller
    with TRUST.allowed_channel(address, "330000") as channel: ...        # a caller the table admits, per method

Keys are made on first use of an identity and the bundle rewritten; servers re-read a changed bundle when a token
does not verify (service_kit.identities.TokenVerifier), so identities can appear while servers run.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service_kit import access, identities
from service_kit.channels import TokenInterceptor, minter_for, open_channel
from service_kit.identities import TrustBundle
from service_kit.settings import Settings

# When a test asks for "any allowed caller", the first of these the table allows for the method is used.
PREFERENCE = (identities.OPS_API, identities.GATEWAY)


class TestTrust:
    """Keys for any identity a test names, one trust bundle file listing all of them."""

    __test__ = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bundle_file = folder / "trust-bundle.json"
        self._public: dict[str, Ed25519PublicKey] = {}
        self._lock = threading.Lock()
        TrustBundle({}).write(self.bundle_file)

    def key_file(self, spiffe_id: str) -> str:
        """The private key file of `spiffe_id`, made (and added to the bundle) on first use."""
        with self._lock:
            if spiffe_id not in self._public:
                self._public.update(identities.generate_keys(self.folder, [spiffe_id]).keys)
                TrustBundle(dict(self._public)).write(self.bundle_file)
        return str(self.folder / identities.key_file_name(spiffe_id))

    def server(self, settings: Settings) -> Settings:
        """The settings with the test trust bundle, and this service's own identity key for the calls it makes."""
        update: dict[str, Any] = {"trust_bundle_file": str(self.bundle_file)}
        if settings.identity:
            update["service_key_file"] = self.key_file(settings.identity)
        return settings.model_copy(update=update)

    def caller(self, spiffe_id: str) -> Settings:
        """Settings of a process that is `spiffe_id` (for open_channel)."""
        return Settings(service="test-caller", service_identity=spiffe_id, service_key_file=self.key_file(spiffe_id))

    def channel(self, address: str, spiffe_id: str) -> grpc.Channel:
        """A channel whose every call presents `spiffe_id`."""
        return open_channel(address, self.caller(spiffe_id))

    def env(self, spiffe_id: str) -> dict[str, str]:
        """The variables a service process started by a test needs to be `spiffe_id` and trust the test bundle."""
        return {
            "CARBON_SERVICE_IDENTITY": spiffe_id,
            "CARBON_SERVICE_KEY_FILE": self.key_file(spiffe_id),
            "CARBON_TRUST_BUNDLE_FILE": str(self.bundle_file),
        }

    def token(self, spiffe_id: str) -> str:
        return minter_for(spiffe_id, self.key_file(spiffe_id)).token()

    def allowed_channel(
        self, address: str, region_code: str = "", options: Sequence[tuple[str, int | str]] = ()
    ) -> grpc.Channel:
        """A channel that presents, per call, an identity the access table allows for the method in `region_code`
        (without one, only the national callers are considered). `options` add to the kit's channel options."""
        return grpc.intercept_channel(open_channel(address, options=options), _PerMethod(self, region_code))


class _PerMethod(TokenInterceptor):
    """Presents, per call, the token of a caller the table allows for the method."""

    def __init__(self, trust: TestTrust, region_code: str) -> None:
        super().__init__(lambda: "")
        self._trust = trust
        self._region_code = region_code

    def token_for(self, method: str) -> str:
        # Methods outside the table (the gateway's own) are for external callers: no service token.
        if method not in access.ACCESS:
            return ""
        return self._trust.token(allowed_caller(method, self._region_code))


def allowed_caller(method: str, region_code: str) -> str:
    """An identity the table lets call `method` in `region_code`: the ops API or the gateway when they may, else the
    region's own service of the first kind allowed."""
    for spiffe_id in PREFERENCE:
        if access.allowed(spiffe_id, method, region_code):
            return spiffe_id
    kinds = sorted(access.ACCESS.get(method, ()))
    regional = [kind for kind in kinds if kind in identities.REGIONAL_KINDS]
    if not regional or not region_code:
        raise LookupError(f"the access table allows nobody to call {method}")
    return identities.regional(region_code, regional[0])


def _make() -> TestTrust:
    folder = Path(tempfile.mkdtemp(prefix="carbon-trust-"))
    atexit.register(shutil.rmtree, folder, True)
    return TestTrust(folder)


TRUST = _make()
