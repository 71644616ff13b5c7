"""Prints fresh random secrets for the compose stack, in .env format: python deploy/dev_secrets.py > deploy/.env

Compose reads deploy/.env (ignored by git and by the Docker build context). The gateway admits only configured
callers, so the run also writes deploy/gateway-callers.json (git-ignored) with the digest of the ops API's gateway
key. It also writes deploy/identities/ (git-ignored): a key per service identity and the trust bundle of their public
halves (service_kit.identities, as `carbon up` makes them), so every service proves who it is and checks who calls it
(docs/access.md); and a resident-authorization signing key per region's identity service with the JWKS the gateway
verifies them with (service_kit.embedded_front_door, ADR 0205). Compose mounts each service's own key only.

Every run makes new keys: data encrypted under old keys cannot be read with new ones, so generate once per local
database volume. For local use only; production keys live in the secret store and reach pods as Kubernetes Secrets.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

from service_kit import identities
from service_kit.embedded_front_door import write_resident_auth_keys
from service_kit.topology import Registry

DEPLOY = Path(__file__).resolve().parent
CALLERS_FILE = DEPLOY / "gateway-callers.json"
IDENTITIES_DIR = DEPLOY / "identities"
BUNDLE_FILE = "trust-bundle.json"
REGISTRY_FILE = DEPLOY / "registry.compose.json"
# The containers run as this user (deploy/Dockerfile); the mounted keys must be readable by it.
CONTAINER_UID = 10001


def dev_env() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "CARBON_SECRET_IDENTITY_HMAC_KEY": secrets.token_hex(32),
        # One national key for every region: it links a person's accounts across regions.
        "CARBON_SECRET_NATIONAL_PERSON_KEY": secrets.token_hex(32),
        # One national key for every region's ingest: one activity's fingerprint is the same in every region.
        "CARBON_SECRET_ACTIVITY_FINGERPRINT_KEYS": "e1:" + secrets.token_hex(32),
        # "<key id>:<base64 of 32 bytes>"; the first key encrypts, all listed keys decrypt.
        "CARBON_SECRET_IDENTITY_ENCRYPTION_KEYS": "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "CARBON_SECRET_INGEST_PARTNER_KEY": secrets.token_hex(32),
        # The ops API's key at the gateway (gateway-callers.json holds its digest).
        "CARBON_SECRET_GATEWAY_API_KEY": secrets.token_urlsafe(32),
    }


def write_callers(ops_key: str) -> None:
    digest = hashlib.sha256(ops_key.encode()).hexdigest()
    callers = [{"id": "ops-api", "role": "operator", "keys": [{"sha256": digest}]}]
    CALLERS_FILE.write_text(json.dumps({"callers": callers}, indent=2) + "\n")


def write_trust(folder: Path, registry: Registry) -> Path:
    """New service keys for every identity of the registry's regions, their trust bundle, the resident-authorization
    keys and JWKS, all under `folder`, which must be new or empty: the functions used keep keys they find, and a new
    stack must never keep half of an old one's keys."""
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"dev_secrets: {folder} is not empty; keys are only written into a new folder")
    codes = [region.region_code for region in registry.regions]
    identities.generate_keys(folder, identities.all_identities(codes)).write(folder / BUNDLE_FILE)
    write_resident_auth_keys(folder, registry)
    return folder


def _hand_to_containers(folder: Path) -> None:
    """Gives the key files to the containers' user when this run may (root); otherwise they stay the owner's only,
    and the stack must run as the owner (deploy/README.md). Never readable by everyone."""
    if os.geteuid() != 0:
        return
    for path in folder.iterdir():
        os.chown(path, CONTAINER_UID, CONTAINER_UID)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--keys-only",
        metavar="FOLDER",
        help="write only the identity keys, trust bundle, resident keys and JWKS of --registry into FOLDER (for the "
        "secret store and the Kubernetes manifests, deploy/README.md), and print nothing",
    )
    parser.add_argument("--registry", default=str(REGISTRY_FILE), help="the regions to make keys for")
    args = parser.parse_args(argv)
    registry = Registry.load(Path(args.registry))
    if args.keys_only:
        write_trust(Path(args.keys_only), registry)
        return 0
    env = dev_env()
    write_callers(env["CARBON_SECRET_GATEWAY_API_KEY"])
    shutil.rmtree(IDENTITIES_DIR, ignore_errors=True)  # the compose stack's own folder, made anew on every run
    _hand_to_containers(write_trust(IDENTITIES_DIR, registry))
    for name, value in env.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
