"""Service identities: who a process is (a SPIFFE-style ID) and how it proves it to the services it calls.

Every process of the system has one ID in the trust domain `carbon-account`:
`spiffe://carbon-account/national/gateway`, `spiffe://carbon-account/national/ops-api`, or
`spiffe://carbon-account/region/<region code>/<kind>` for a region's identity, ingest, ledger and rewards services.

Under mTLS the client certificate's URI SAN carries the ID. Without mTLS the caller sends a short-lived token in
metadata `x-carbon-service-token`: an EdDSA (Ed25519) JWT whose `sub` is the ID and `aud` the trust domain, signed with
the caller's own private key and checked against the trust bundle (ID -> public key). A token is minted once and
re-used until shortly before it expires, and a server caches the tokens it has verified, so the per-call cost is a
dict look-up on both sides rather than a signature. docs/adr/0011-service-identities-and-access-table.md.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

TRUST_DOMAIN = "carbon-account"
PREFIX = f"spiffe://{TRUST_DOMAIN}/"
GATEWAY = f"{PREFIX}national/gateway"
OPS_API = f"{PREFIX}national/ops-api"
REGIONAL_KINDS = ("identity", "ingest", "ledger", "rewards", "incentives")
TOKEN_METADATA_KEY = "x-carbon-service-token"
TOKEN_ALGORITHM = "EdDSA"
# Long enough that a process signs a few times an hour, short enough that a stolen token soon stops working.
TOKEN_LIFETIME_S = 300
# A token is replaced this long before it expires, so one in flight never arrives stale at a slow server.
TOKEN_RENEW_BEFORE_S = 60
# Clocks of two machines disagree a little; a token this far in the future or past is still accepted.
CLOCK_LEEWAY_S = 30

# The service packages and the kind of identity they run as.
_KIND_OF_PACKAGE = {
    "identity_svc": "identity",
    "ingest_svc": "ingest",
    "ledger_svc": "ledger",
    "rewards_svc": "rewards",
    "incentives_svc": "incentives",
}


class IdentityError(ValueError):
    """A SPIFFE ID, key or trust bundle the system cannot use; the message says which and why."""


def regional(region_code: str, kind: str) -> str:
    """The ID of a regional service, e.g. spiffe://carbon-account/region/330000/ledger."""
    if kind not in REGIONAL_KINDS:
        raise IdentityError(f"unknown regional service kind {kind!r}; one of {', '.join(REGIONAL_KINDS)}")
    return f"{PREFIX}region/{region_code}/{kind}"


def identity_of_service(service: str, region_code: str) -> str:
    """The ID a service package runs as: the national ones by name, a regional one in its region."""
    if service == "gateway":
        return GATEWAY
    if service == "ops_api":
        return OPS_API
    if service in _KIND_OF_PACKAGE:
        return regional(region_code, _KIND_OF_PACKAGE[service])
    return ""


@dataclass(frozen=True)
class ServiceIdentity:
    """A parsed ID: its region ("" for a national service) and kind (gateway, ops-api, identity, ingest...)."""

    spiffe_id: str
    region_code: str
    kind: str

    @property
    def is_national(self) -> bool:
        return not self.region_code


def parse(spiffe_id: str) -> ServiceIdentity:
    """Splits an ID of this trust domain; IdentityError for anything else (another domain, an unknown shape)."""
    if not spiffe_id.startswith(PREFIX):
        raise IdentityError(f"{spiffe_id!r} is not an ID of the trust domain {TRUST_DOMAIN}")
    parts = spiffe_id.removeprefix(PREFIX).split("/")
    if parts == ["national", "gateway"] or parts == ["national", "ops-api"]:
        return ServiceIdentity(spiffe_id, "", parts[1])
    regional_shape = len(parts) == 3 and parts[0] == "region" and len(parts[1]) == 6 and parts[1].isdigit()
    if regional_shape and parts[2] in REGIONAL_KINDS:
        return ServiceIdentity(spiffe_id, parts[1], parts[2])
    raise IdentityError(f"{spiffe_id!r} names no service of {TRUST_DOMAIN}")


def all_identities(region_codes: Iterable[str]) -> list[str]:
    """Every ID of a system with these regions: the two national services and five services per region."""
    ids = [GATEWAY, OPS_API]
    for code in region_codes:
        ids.extend(regional(code, kind) for kind in REGIONAL_KINDS)
    return ids


# --- keys and the trust bundle -------------------------------------------------------------------------------------


def _raw_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _public_from_raw(text: str) -> Ed25519PublicKey:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (PKCS#8), as write_private_key leaves it."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as error:
        raise IdentityError(f"cannot read the service key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"the service key {path} is not an Ed25519 key")
    return key


def write_private(path: Path, content: bytes) -> None:
    """Writes a file only its owner may read (mode 0600), replacing any earlier one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)


@dataclass(frozen=True)
class TrustBundle:
    """Which public key speaks for which ID. The file is JSON: {"trust_domain": ..., "keys": {ID: base64url key}}."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def load(cls, path: str | Path) -> TrustBundle:
        try:
            document = json.loads(Path(path).read_text())
            entries = document["keys"]
            if document.get("trust_domain") != TRUST_DOMAIN:
                raise IdentityError(f"the trust bundle {path} is not for the trust domain {TRUST_DOMAIN}")
            return cls({spiffe_id: _public_from_raw(text) for spiffe_id, text in entries.items()})
        except (OSError, ValueError, KeyError, TypeError) as error:
            if isinstance(error, IdentityError):
                raise
            raise IdentityError(f"cannot read the trust bundle {path}: {error}") from None

    def write(self, path: Path) -> None:
        """Writes the bundle whole (a temporary file renamed over it: a server never reads half a bundle)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(self.to_json())
        os.replace(temporary, path)

    def to_json(self) -> str:
        keys = {spiffe_id: _raw_public(key) for spiffe_id, key in sorted(self.keys.items())}
        return json.dumps({"trust_domain": TRUST_DOMAIN, "keys": keys}, indent=2) + "\n"


def generate_keys(directory: Path, identities: Iterable[str]) -> TrustBundle:
    """A new key per ID written under `directory` (key_file_name), and the bundle of their public keys (not written).

    A key already there is kept, so a restarted system keeps its identities."""
    public: dict[str, Ed25519PublicKey] = {}
    for spiffe_id in identities:
        parse(spiffe_id)
        path = directory / key_file_name(spiffe_id)
        if path.exists():
            key = load_private_key(path)
        else:
            key = Ed25519PrivateKey.generate()
            write_private(path, private_key_pem(key))
        public[spiffe_id] = key.public_key()
    return TrustBundle(public)


def key_file_name(spiffe_id: str) -> str:
    """The file name a process's key gets in a folder of keys, e.g. region-330000-ledger.key."""
    return spiffe_id.removeprefix(PREFIX).replace("/", "-") + ".key"


# --- tokens --------------------------------------------------------------------------------------------------------


class TokenMinter:
    """Mints this process's token and re-uses it until shortly before it expires (one signature per few minutes)."""

    def __init__(self, spiffe_id: str, key: Ed25519PrivateKey, lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        parse(spiffe_id)
        self.spiffe_id = spiffe_id
        self._key = key
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def token(self) -> str:
        now = time.time()
        if now < self._renew_at:
            return self._token
        with self._lock:
            if now >= self._renew_at:
                self._token = mint(self.spiffe_id, self._key, now, self._lifetime_s)
                self._renew_at = now + max(1, self._lifetime_s - TOKEN_RENEW_BEFORE_S)
            return self._token


def mint(spiffe_id: str, key: Ed25519PrivateKey, now: float, lifetime_s: int) -> str:
    """One signed token for `spiffe_id`, valid from now for lifetime_s seconds."""
    claims = {"sub": spiffe_id, "aud": TRUST_DOMAIN, "iat": int(now), "exp": int(now) + lifetime_s}
    return jwt.encode(claims, key, algorithm=TOKEN_ALGORITHM)


class TokenInvalid(Exception):
    """A token that does not prove an identity; the message says why (never echoed with the token itself)."""


# Verified tokens kept per server; beyond this the expired ones are dropped (there is one live token per caller).
_MAX_CACHED_TOKENS = 10_000


# How often a server looks at its trust bundle file for a change (a rotated or withdrawn key), on the hot path.
BUNDLE_RECHECK_S = 30.0


class TokenVerifier:
    """Checks tokens against a trust bundle and remembers the good ones until they expire.

    Given the bundle's file, the verifier re-reads it when it changed: at once when a token does not verify (an ID
    added, a key rotated), and otherwise every BUNDLE_RECHECK_S, forgetting every token verified so far, so a
    withdrawn key stops working within that time even for tokens it had accepted."""

    def __init__(
        self, bundle: TrustBundle, path: str | Path | None = None, recheck_s: float = BUNDLE_RECHECK_S
    ) -> None:
        self._bundle = bundle
        self._path = Path(path) if path is not None else None
        self._loaded_mtime = self._mtime()
        self._recheck_s = recheck_s
        self._recheck_at = time.monotonic() + recheck_s
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_file(cls, path: str | Path, recheck_s: float = BUNDLE_RECHECK_S) -> TokenVerifier:
        return cls(TrustBundle.load(path), path, recheck_s)

    def verify(self, token: str) -> str:
        """The ID the token proves, or TokenInvalid."""
        if self._path is not None and time.monotonic() >= self._recheck_at:
            self._recheck_at = time.monotonic() + self._recheck_s
            self._reloaded()
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1] + CLOCK_LEEWAY_S:
            return cached[0]
        try:
            spiffe_id, expires = self._check(token)
        except TokenInvalid:
            if not self._reloaded():
                raise
            spiffe_id, expires = self._check(token)
        if len(self._verified) >= _MAX_CACHED_TOKENS:
            self._drop_expired()
        self._verified[token] = (spiffe_id, expires)
        return spiffe_id

    def _mtime(self) -> float:
        try:
            return self._path.stat().st_mtime if self._path is not None else 0.0
        except OSError:
            return 0.0

    def _reloaded(self) -> bool:
        """Re-reads the bundle file if it changed since it was read, forgetting verified tokens; whether it did."""
        with self._lock:
            mtime = self._mtime()
            if self._path is None or mtime == self._loaded_mtime:
                return False
            self._bundle = TrustBundle.load(self._path)
            self._loaded_mtime = mtime
            self._verified = {}
            return True

    def _check(self, token: str) -> tuple[str, float]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise TokenInvalid(f"not a token: {error}") from None
        subject = unverified.get("sub")
        key = self._bundle.keys.get(subject) if isinstance(subject, str) else None
        if key is None:
            raise TokenInvalid(f"no key in the trust bundle for {subject!r}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[TOKEN_ALGORITHM],
                audience=TRUST_DOMAIN,
                leeway=CLOCK_LEEWAY_S,
                options={"require": ["sub", "aud", "exp"]},
            )
        except jwt.PyJWTError as error:
            raise TokenInvalid(f"the token of {subject} does not verify: {error}") from None
        return str(claims["sub"]), float(claims["exp"])

    def _drop_expired(self) -> None:
        now = time.time() - CLOCK_LEEWAY_S
        live = {token: entry for token, entry in self._verified.items() if entry[1] > now}
        self._verified = live if len(live) < _MAX_CACHED_TOKENS else {}
