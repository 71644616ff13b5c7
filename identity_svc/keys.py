"""Keys of identity_svc: keyed hashes for lookup (HMAC-SHA256) and encrypted real-name records (AES-256-GCM).

Secrets (CARBON_SECRET_<NAME>):
  identity_hmac_key          lookup hashes of ID and phone numbers in this region (>= 32 characters)
  national_person_key        the national person key, the same in every region (>= 32 characters)
  identity_encryption_keys   "<key id>:<base64 of 32 bytes>[,<key id>:<base64>...]"; the first encrypts, all decrypt
In the embedded mode (no database URL: SQLite under the data folder) missing keys are generated once into a key file
in the data folder, with a warning. Anywhere else a missing key stops the service from starting. See ADR 0201.

The resident-authorization signing key (Ed25519, PEM) comes from the file CARBON_RESIDENT_AUTH_KEY_FILE names; the
gateway holds its public half (ADR 0205).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from service_kit.settings import Settings, SettingsError

log = logging.getLogger("carbon.identity.keys")

HMAC_SECRET = "identity_hmac_key"
NATIONAL_SECRET = "national_person_key"
ENCRYPTION_SECRET = "identity_encryption_keys"
KEY_FILE_NAME = "identity-keys.json"
MIN_HMAC_KEY_CHARS = 32
AES_KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_MAX_CHARS = 32
HASH_KEY_ID_CHARS = 16


class KeyConfigurationError(SettingsError):
    """A key is missing or malformed; the message names the variable, never the value."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    blob: bytes  # nonce || ciphertext+tag


class KeyRing:
    def __init__(self, hmac_key: bytes, national_key: bytes, encryption_keys: dict[str, bytes], current: str) -> None:
        if current not in encryption_keys:
            raise KeyConfigurationError("the current encryption key id has no key")
        self._hmac_key = hmac_key
        self._national_key = national_key
        self._aead = {key_id: AESGCM(key) for key_id, key in encryption_keys.items()}
        self.current_key_id = current
        # Names the HMAC key without revealing it, so a stored name hash says which key made it (ADR 0204).
        self.hash_key_id = self._mac(hmac_key, b"key-id:", "")[:HASH_KEY_ID_CHARS]

    def __repr__(self) -> str:
        return f"KeyRing(current_key_id={self.current_key_id!r})"

    def _mac(self, key: bytes, domain: bytes, value: str) -> str:
        return hmac.new(key, domain + value.encode(), hashlib.sha256).hexdigest()

    def id_hash(self, id_number: str) -> str:
        """Lookup hash of an ID number in this region (one person, one account)."""
        return self._mac(self._hmac_key, b"id:", id_number)

    def phone_hash(self, phone_number: str) -> str:
        return self._mac(self._hmac_key, b"phone:", phone_number)

    def name_hash(self, account_number: str, name: str) -> str:
        """The keyed hash of an account's real name (normalised by the caller), salted with the account number so
        that equal names on two accounts do not show as equal hashes."""
        return self._mac(self._hmac_key, b"name:", f"{account_number}\x1f{name}")

    def fingerprint(self, *parts: str) -> str:
        """Keyed digest of a request's content, to tell a retry from a reused request id without storing the data."""
        return self._mac(self._hmac_key, b"request:", "\x1f".join(parts))

    def person_key(self, id_number: str) -> str:
        """National person key: HMAC-SHA256(national key, ID number) in hex, identical in every region."""
        return self._mac(self._national_key, b"", id_number)

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(
            self.current_key_id, nonce + self._aead[self.current_key_id].encrypt(nonce, plaintext, associated)
        )

    def open(self, sealed: Sealed, associated: bytes) -> bytes:
        aead = self._aead.get(sealed.key_id)
        if aead is None:
            raise KeyConfigurationError(f"no decryption key for key id {sealed.key_id!r}")
        return aead.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], associated)


def generate_encryption_key() -> str:
    return base64.b64encode(os.urandom(AES_KEY_BYTES)).decode()


def parse_encryption_keys(raw: str, variable: str) -> tuple[dict[str, bytes], str]:
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for item in raw.split(","):
        key_id, sep, encoded = item.strip().partition(":")
        if not sep or not key_id or len(key_id) > KEY_ID_MAX_CHARS or not key_id.isprintable():
            raise KeyConfigurationError(f"{variable} must be '<key id>:<base64 key>[,...]'")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyConfigurationError(f"{variable}: key {key_id!r} is not base64") from None
        if len(key) != AES_KEY_BYTES:
            raise KeyConfigurationError(f"{variable}: key {key_id!r} must be {AES_KEY_BYTES} bytes")
        if key_id in keys:
            raise KeyConfigurationError(f"{variable}: key id {key_id!r} appears twice")
        keys[key_id] = key
        order.append(key_id)
    return keys, order[0]


def _embedded_key_file(data_dir: Path) -> dict[str, str]:
    """The data folder's generated keys, created once; concurrent starters all end up with the first file written."""
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        generated = {
            HMAC_SECRET: secrets.token_hex(32),
            NATIONAL_SECRET: secrets.token_hex(32),
            ENCRYPTION_SECRET: "local1:" + generate_encryption_key(),
        }
        temporary = data_dir / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(generated, handle)
        try:
            os.link(temporary, path)  # fails if another process won the race: then its file is the one
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def load_keyring(settings: Settings) -> KeyRing:
    configured = {name: settings.secret(name).reveal() for name in (HMAC_SECRET, NATIONAL_SECRET, ENCRYPTION_SECRET)}
    missing = [name for name, value in configured.items() if not value]
    if missing:
        if settings.database_url:
            variables = ", ".join(f"CARBON_SECRET_{name.upper()}" for name in missing)
            raise KeyConfigurationError(f"identity keys are not configured: set {variables}")
        generated = _embedded_key_file(settings.data_dir)
        log.warning(
            "identity keys not configured: using keys generated into the data folder (embedded mode only)",
            extra={"key_file": str(settings.data_dir / KEY_FILE_NAME), "missing": ",".join(missing)},
        )
        configured.update({name: generated[name] for name in missing})
    for name in (HMAC_SECRET, NATIONAL_SECRET):
        if len(configured[name]) < MIN_HMAC_KEY_CHARS:
            raise KeyConfigurationError(
                f"CARBON_SECRET_{name.upper()} must be at least {MIN_HMAC_KEY_CHARS} characters"
            )
    keys, current = parse_encryption_keys(configured[ENCRYPTION_SECRET], f"CARBON_SECRET_{ENCRYPTION_SECRET.upper()}")
    return KeyRing(configured[HMAC_SECRET].encode(), configured[NATIONAL_SECRET].encode(), keys, current)


def load_signing_key(path: Path, variable: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from an unencrypted PEM file; errors name the variable and the file, never the key."""
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise KeyConfigurationError(f"{variable}: cannot read {path}: {error.strerror}") from None
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyConfigurationError(f"{variable}: {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{variable}: {path} must hold an Ed25519 key")
    if path.stat().st_mode & 0o077:
        log.warning("a signing key file is readable by others than its owner", extra={"key_file": str(path)})
    return key
