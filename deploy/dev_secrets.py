"""Prints fresh random secrets for the compose stack, in .env format: python deploy/dev_secrets.py > deploy/.env

Compose reads deploy/.env (ignored by git and by the Docker build context). Every run makes new keys: data encrypted
under old keys cannot be read with new ones, so generate once per local database volume. For local use only;
production keys live in the secret store and reach pods as Kubernetes Secrets.
"""

from __future__ import annotations

import base64
import secrets


def dev_env() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "CARBON_SECRET_IDENTITY_HMAC_KEY": secrets.token_hex(32),
        # One national key for every region: it links a person's accounts across regions.
        "CARBON_SECRET_NATIONAL_PERSON_KEY": secrets.token_hex(32),
        # "<key id>:<base64 of 32 bytes>"; the first key encrypts, all listed keys decrypt.
        "CARBON_SECRET_IDENTITY_ENCRYPTION_KEYS": "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "CARBON_SECRET_INGEST_PARTNER_KEY": secrets.token_hex(32),
    }


if __name__ == "__main__":
    for name, value in dev_env().items():
        print(f"{name}={value}")
