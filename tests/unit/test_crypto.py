"""Envelope encryption: round trips, the blob layout, and every way a blob can fail to decrypt."""

from __future__ import annotations

import base64
import os

import pytest

from adapters.crypto import EnvelopeCipher, key_id_of
from adapters.keys import EnvKeyProvider
from core.errors import ValueIntegrityError

PLAINTEXT = b"sk-live-0123456789abcdef"
ASSOCIATED_DATA = b"secret-management:v1:0f3c8a52-5d0e-4a8e-9a0e-6c1c2b1f8e11:1"
FIXED_OVERHEAD = 1 + 1 + 40 + 12 + 16  # version, key id length, wrapped key, nonce, tag


def env_provider() -> EnvKeyProvider:
    return EnvKeyProvider({"SECRETS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})


@pytest.fixture
def provider() -> EnvKeyProvider:
    return env_provider()


@pytest.fixture
def cipher(provider: EnvKeyProvider) -> EnvelopeCipher:
    return EnvelopeCipher(provider)


@pytest.mark.parametrize("plaintext", [b"", b"\x00\xff\x00", PLAINTEXT, os.urandom(64 * 1024)])
def test_decrypt_returns_what_was_encrypted(cipher: EnvelopeCipher, plaintext: bytes) -> None:
    assert cipher.decrypt(cipher.encrypt(plaintext, ASSOCIATED_DATA), ASSOCIATED_DATA) == plaintext


def test_the_blob_follows_the_documented_layout(
    cipher: EnvelopeCipher, provider: EnvKeyProvider
) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    key_id = provider.active_key().id

    assert blob[0] == 1
    assert blob[2 : 2 + blob[1]].decode() == key_id == key_id_of(blob)
    assert len(blob) == FIXED_OVERHEAD + len(key_id) + len(PLAINTEXT)
    assert PLAINTEXT not in blob


def test_every_encryption_uses_a_fresh_data_key_and_nonce(cipher: EnvelopeCipher) -> None:
    first, second = (cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA) for _ in range(2))
    header = 2 + first[1]
    assert first[header : header + 40] != second[header : header + 40]
    assert first[header + 40 : header + 52] != second[header + 40 : header + 52]


def test_other_associated_data_does_not_decrypt(
    cipher: EnvelopeCipher, provider: EnvKeyProvider
) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    with pytest.raises(ValueIntegrityError) as raised:
        cipher.decrypt(blob, ASSOCIATED_DATA[:-1] + b"2")
    assert_reveals_nothing(raised.value, blob, provider)


def test_any_altered_byte_is_detected(cipher: EnvelopeCipher, provider: EnvKeyProvider) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    for position in range(len(blob)):
        altered = bytearray(blob)
        altered[position] ^= 0x01
        with pytest.raises(ValueIntegrityError) as raised:
            cipher.decrypt(bytes(altered), ASSOCIATED_DATA)
        assert_reveals_nothing(raised.value, blob, provider)


@pytest.mark.parametrize("length", [0, 1, 2, 20, 70])
def test_a_truncated_blob_is_refused(cipher: EnvelopeCipher, length: int) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    with pytest.raises(ValueIntegrityError):
        cipher.decrypt(blob[:length], ASSOCIATED_DATA)


def test_an_unknown_format_version_is_refused(cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    with pytest.raises(ValueIntegrityError, match="format version"):
        cipher.decrypt(b"\x02" + blob[1:], ASSOCIATED_DATA)
    with pytest.raises(ValueIntegrityError, match="format version"):
        key_id_of(b"\x02" + blob[1:])


def test_a_key_the_provider_does_not_hold_is_refused(
    cipher: EnvelopeCipher, provider: EnvKeyProvider
) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    other = EnvelopeCipher(env_provider())
    with pytest.raises(ValueIntegrityError, match=key_id_of(blob)) as raised:
        other.decrypt(blob, ASSOCIATED_DATA)
    assert_reveals_nothing(raised.value, blob, provider)


def test_a_malformed_key_id_is_refused(cipher: EnvelopeCipher) -> None:
    blob = cipher.encrypt(PLAINTEXT, ASSOCIATED_DATA)
    with pytest.raises(ValueIntegrityError, match="key id"):
        key_id_of(blob[:2] + b"\xff" + blob[3:])


def assert_reveals_nothing(
    error: ValueIntegrityError, blob: bytes, provider: EnvKeyProvider
) -> None:
    """No plaintext, blob or key bytes in the message, and no chained vendor exception."""
    material = provider.active_key().material or b""
    message = f"{error} {error.args!r} {error.details!r}"
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    for forbidden in (PLAINTEXT, blob, material):
        assert forbidden.hex() not in message
        assert repr(forbidden) not in message
        assert base64.b64encode(forbidden).decode() not in message
    assert PLAINTEXT.decode() not in message
