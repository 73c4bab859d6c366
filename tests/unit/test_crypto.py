"""Envelope encryption: round trips, the blob layout, and every way a blob can fail to decrypt."""

from __future__ import annotations

import base64
import os

import pytest

from adapters import crypto
from adapters.crypto import EnvelopeCipher, key_id_of
from adapters.keys import EnvKeyProvider
from core.domain.errors import ValueIntegrityError

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


def counting_unwraps(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The wrapped keys `aes_key_unwrap` is asked to unwrap from now on."""
    asked: list[bytes] = []
    unwrap = crypto.aes_key_unwrap

    def counted(wrapping_key: bytes, wrapped: bytes) -> bytes:
        asked.append(wrapped)
        return unwrap(wrapping_key, wrapped)

    monkeypatch.setattr(crypto, "aes_key_unwrap", counted)
    return asked


def test_a_data_key_is_unwrapped_once_while_it_is_cached(
    provider: EnvKeyProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    cipher = EnvelopeCipher(provider)
    blob = cipher.encrypt(b"value", b"secret-1:1")
    asked = counting_unwraps(monkeypatch)
    assert [cipher.decrypt(blob, b"secret-1:1") for _ in range(3)] == [b"value"] * 3
    assert len(asked) == 1
    # GCM still checks each blob: a cached key does not open it under other associated data
    with pytest.raises(ValueIntegrityError):
        cipher.decrypt(blob, b"secret-2:1")


def test_cached_data_keys_expire_and_are_bounded(
    provider: EnvKeyProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    expiring = EnvelopeCipher(provider, data_key_seconds=0)
    blob = expiring.encrypt(b"value", b"a")
    asked = counting_unwraps(monkeypatch)
    expiring.decrypt(blob, b"a")
    expiring.decrypt(blob, b"a")
    assert len(asked) == 2

    bounded = EnvelopeCipher(provider, cached_data_keys=2)
    blobs = [bounded.encrypt(b"v", b"a") for _ in range(3)]
    asked.clear()
    for blob in [*blobs, blobs[2], blobs[0]]:  # the first was pushed out by the third
        assert bounded.decrypt(blob, b"a") == b"v"
    assert len(asked) == 4


def test_a_tampered_wrapped_key_is_refused_even_when_the_original_is_cached(
    cipher: EnvelopeCipher,
) -> None:
    blob = cipher.encrypt(b"value", b"a")
    cipher.decrypt(blob, b"a")
    offset = 2 + blob[1]
    tampered = blob[:offset] + bytes([blob[offset] ^ 1]) + blob[offset + 1 :]
    with pytest.raises(ValueIntegrityError):
        cipher.decrypt(tampered, b"a")
    assert "value" not in repr(cipher._data_keys) and "AESGCM" not in repr(cipher._data_keys)
