"""What `carbon up` writes into the data folder so that the embedded gateway runs as production does: a caller
configuration with a demo platform, a demo data partner and the ops API (each with its own key, kept in a file of its
own, readable by its owner only; the configuration holds only their digests), and the resident-authorization keys (one
Ed25519 key per region's identity service, and the public JWKS the gateway verifies them with).

Made once per data folder and reused on every later start; the configuration is rewritten each start so that it
names the regions of the current registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from jwt.algorithms import OKPAlgorithm

from service_kit.topology import Registry

GATEWAY_CALLERS_FILE = "gateway-callers.json"
RESIDENT_AUTH_JWKS_FILE = "resident-auth-jwks.json"
DEMO_PARTNER_SECRETS_FILE = "demo-partner-secrets.json"
# The callers `carbon up` configures: (caller id, role, channel platform, key file). The national platform and the
# data partner act in every region, the provincial one in the first region of the registry only.
PLATFORM = ("demo-platform", "platform", "alipay", "gateway-platform-key")
PROVINCIAL_PLATFORM = ("demo-provincial-platform", "platform", "gov_app", "gateway-provincial-platform-key")
PARTNER = ("demo-partner", "partner", "", "gateway-partner-key")
OPS_API = ("ops-api", "operator", "", "gateway-ops-api-key")
DEMO_PARTNER_BEHAVIOURS = ("transit_trip", "bike_km", "ev_charging_kwh")


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)


def key_file(data_dir: Path, caller: tuple[str, str, str, str]) -> Path:
    return data_dir / caller[3]


def write_gateway_callers(data_dir: Path, registry: Registry) -> Path:
    """The gateway's caller configuration (keys made on the first start); returns its path."""
    every = [region.region_code for region in registry.regions]
    callers: list[dict[str, Any]] = []
    for caller in (PLATFORM, PROVINCIAL_PLATFORM, PARTNER, OPS_API):
        caller_id, role, platform, _ = caller
        regions = every[:1] if caller is PROVINCIAL_PLATFORM else every
        path = key_file(data_dir, caller)
        if not path.exists():
            _write_private(path, (secrets.token_urlsafe(32) + "\n").encode())
        digest = hashlib.sha256(path.read_text().strip().encode()).hexdigest()
        entry: dict[str, Any] = {"id": caller_id, "role": role, "regions": regions, "keys": [{"sha256": digest}]}
        if platform:
            entry["platform"] = platform
        callers.append(entry)
    config = data_dir / GATEWAY_CALLERS_FILE
    config.write_text(json.dumps({"callers": callers}, indent=2) + "\n")
    return config


def resident_auth_key_file(data_dir: Path, region_code: str) -> Path:
    return data_dir / f"resident-auth-{region_code}.pem"


def write_resident_auth_keys(data_dir: Path, registry: Registry) -> Path:
    """One signing key per region's identity service (made once) and the JWKS of their public keys, key id = the
    issuing identity service's SPIFFE ID (ADR 0205); returns the JWKS file's path."""
    keys = []
    for region in registry.regions:
        path = resident_auth_key_file(data_dir, region.region_code)
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            _write_private(path, pem)
        private = load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        kid = f"spiffe://carbon-account/region/{region.region_code}/identity"
        keys.append({**OKPAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": kid})
    jwks = data_dir / RESIDENT_AUTH_JWKS_FILE
    jwks.write_text(json.dumps({"keys": keys}, indent=2) + "\n")
    return jwks


def front_door_environment(service: str, region_code: str, data_dir: Path) -> dict[str, str]:
    """The variables one child process gets from the files above (the files must exist)."""
    if service == "gateway":
        return {
            "CARBON_GATEWAY_CONFIG": str(data_dir / GATEWAY_CALLERS_FILE),
            "CARBON_RESIDENT_AUTH_JWKS_FILE": str(data_dir / RESIDENT_AUTH_JWKS_FILE),
        }
    if service == "identity_svc":
        return {"CARBON_RESIDENT_AUTH_KEY_FILE": str(resident_auth_key_file(data_dir, region_code))}
    if service == "ops_api":
        return {"CARBON_SECRET_GATEWAY_API_KEY": key_file(data_dir, OPS_API).read_text().strip()}
    return {}


def write_demo_partner_secrets(data_dir: Path, secrets_by_region: dict[str, str]) -> Path:
    """The demo data partner's signing secrets by region (key id "k1"), readable by their owner only."""
    path = data_dir / DEMO_PARTNER_SECRETS_FILE
    content = json.dumps({code: {"key_id": "k1", "secret": secret} for code, secret in secrets_by_region.items()})
    if path.exists():
        path.unlink()
    _write_private(path, (content + "\n").encode())
    return path
