"""Keys: keyed hashes, AES-GCM records with key ids for rotation, and where keys come from."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from identity_svc.keys import KEY_FILE_NAME, KeyConfigurationError, KeyRing, load_keyring
from service_kit.settings import Settings
from tests.identity.identity_helpers import SAMPLE_ID


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _settings(tmp_path: Path, database_url: str = "", **secrets: str) -> Settings:
    env = {f"CARBON_SECRET_{name.upper()}": value for name, value in secrets.items()}
    env["CARBON_DATA_DIR"] = str(tmp_path)
    if database_url:
        env["CARBON_DATABASE_URL"] = database_url
    return Settings.from_env("identity_svc", env)


def test_configured_keys_are_read_from_the_environment(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    keys = load_keyring(
        _settings(
            tmp_path,
            "postgresql://db/identity",
            identity_hmac_key="h" * 32,
            national_person_key="n" * 32,
            identity_encryption_keys=f"k2:{_b64(new)},k1:{_b64(old)}",
        )
    )
    assert keys.current_key_id == "k2"
    assert SAMPLE_ID not in repr(keys)
    previous = KeyRing(b"h" * 32, b"n" * 32, {"k1": old}, "k1")
    sealed = previous.seal(b"record", b"acct")
    assert keys.open(sealed, b"acct") == b"record"  # rotated: the old key still decrypts
    assert keys.seal(b"record", b"acct").key_id == "k2"  # and the new one encrypts
    assert keys.id_hash(SAMPLE_ID) == previous.id_hash(SAMPLE_ID)


def test_a_sealed_record_is_bound_to_its_account(tmp_path: Path) -> None:
    keys = KeyRing(b"h" * 32, b"n" * 32, {"k1": os.urandom(32)}, "k1")
    sealed = keys.seal(b"record", b"3300001")
    with pytest.raises(InvalidTag):
        keys.open(sealed, b"3300002")


def test_hashes_are_keyed_and_separate_per_purpose() -> None:
    one = KeyRing(b"a" * 32, b"n" * 32, {"k": os.urandom(32)}, "k")
    other = KeyRing(b"b" * 32, b"n" * 32, {"k": os.urandom(32)}, "k")
    assert one.id_hash(SAMPLE_ID) != other.id_hash(SAMPLE_ID)
    assert one.person_key(SAMPLE_ID) == other.person_key(SAMPLE_ID)  # national: same key in every region
    assert one.id_hash(SAMPLE_ID) != one.person_key(SAMPLE_ID)
    assert one.phone_hash("13812345678") != one.id_hash("13812345678")


def test_missing_keys_stop_a_service_with_a_database_url(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError) as refused:
        load_keyring(_settings(tmp_path, "postgresql://db/identity"))
    assert "CARBON_SECRET_IDENTITY_HMAC_KEY" in str(refused.value)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_the_embedded_mode_generates_one_key_file_per_data_folder_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="carbon.identity.keys"):
        first = load_keyring(_settings(tmp_path))
    assert "embedded mode only" in caplog.text
    second = load_keyring(_settings(tmp_path))
    assert first.id_hash(SAMPLE_ID) == second.id_hash(SAMPLE_ID)
    assert second.open(first.seal(b"x", b"a"), b"a") == b"x"
    assert (tmp_path / KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600
    elsewhere = load_keyring(_settings(tmp_path / "other"))
    assert elsewhere.id_hash(SAMPLE_ID) != first.id_hash(SAMPLE_ID)


@pytest.mark.parametrize(
    "keys",
    ["k1", "k1:notbase64!", f"k1:{base64.b64encode(b'short').decode()}", f"k1:{_b64(b'x' * 32)},k1:{_b64(b'y' * 32)}"],
)
def test_malformed_encryption_keys_are_refused_without_echoing_them(tmp_path: Path, keys: str) -> None:
    with pytest.raises(KeyConfigurationError) as refused:
        load_keyring(
            _settings(tmp_path, identity_hmac_key="h" * 32, national_person_key="n" * 32, identity_encryption_keys=keys)
        )
    assert keys.partition(":")[2] == "" or keys.partition(":")[2] not in str(refused.value)


def test_short_hmac_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError):
        load_keyring(
            _settings(
                tmp_path,
                identity_hmac_key="short",
                national_person_key="n" * 32,
                identity_encryption_keys=f"k1:{_b64(os.urandom(32))}",
            )
        )
