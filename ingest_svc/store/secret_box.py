"""Partner signing secrets encrypted at rest (AES-256-GCM); HMAC verification needs the plaintext back.

The key comes from CARBON_SECRET_INGEST_PARTNER_KEY (any string; SHA-256 makes it 32 bytes). Without one, the
embedded default key is used and the service says so at start: fine on a laptop, never in production.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

EMBEDDED_DEFAULT_KEY = "carbon-account-embedded-dev-only"
_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key_material: str) -> None:
        self._aead = AESGCM(hashlib.sha256(key_material.encode("utf-8")).digest())

    def seal(self, secret: bytes, associated: str) -> bytes:
        """Nonce + ciphertext; `associated` (partner and key id) binds the ciphertext to its row."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret, associated.encode("utf-8"))

    def open(self, sealed: bytes, associated: str) -> bytes:
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated.encode("utf-8"))
