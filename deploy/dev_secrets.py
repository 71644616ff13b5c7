"""Prints fresh random secrets for the compose stack, in .env format: python deploy/dev_secrets.py > deploy/.env

Compose reads deploy/.env (ignored by git and by the Docker build context). The gateway admits only configured
callers, so the run also writes deploy/gateway-callers.json (git-ignored) with the digest of the ops API's gateway
key. Every run makes new keys: data encrypted under old keys cannot be read with new ones, so generate once per local
database volume. For local use only; production keys live in the secret store and reach pods as Kubernetes Secrets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path

CALLERS_FILE = Path(__file__).with_name("gateway-callers.json")


def dev_env() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "CARBON_SECRET_IDENTITY_HMAC_KEY": secrets.token_hex(32),
        # One national key for every region: it links a person's accounts across regions.
        "CARBON_SECRET_NATIONAL_PERSON_KEY": secrets.token_hex(32),
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


if __name__ == "__main__":
    env = dev_env()
    write_callers(env["CARBON_SECRET_GATEWAY_API_KEY"])
    for name, value in env.items():
        print(f"{name}={value}")
