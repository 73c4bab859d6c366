"""Envelope encryption of values: a fresh data key per value, wrapped by a key-encryption key.

Blob layout (format version 1), all lengths in bytes:

    offset  length  field
    0       1       format version, 0x01
    1       1       L, length of the key id (1..255)
    2       L       key id of the key-encryption key, ASCII
    2+L     40      the 256-bit data key wrapped with AES key wrap (RFC 3394)
    42+L    12      AES-256-GCM nonce, random
    54+L    n+16    AES-256-GCM ciphertext of the n-byte value, then its 16-byte tag

The GCM associated data is the format version byte followed by the caller's associated data,
which binds the ciphertext to where it belongs (a secret id and version). The key id and the
wrapped data key are deliberately *not* authenticated by GCM: a re-key job replaces them with
the data key wrapped by a newer key-encryption key, without touching the ciphertext. Changing
them otherwise only makes the unwrap fail.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from adapters.expiring import ExpiringCache
from core.domain.errors import ConfigurationError, ValueIntegrityError
from ports.security import KeyEncryptionKey, KeyProvider

FORMAT_VERSION = 1
DATA_KEY_BYTES = 32
WRAPPED_KEY_BYTES = DATA_KEY_BYTES + 8
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 255


# Unwrapped data keys kept in memory for reads (the key-encryption keys are in memory anyway):
# at most this many, each for at most this long.
DATA_KEY_CACHE_ENTRIES = 4096
DATA_KEY_CACHE_SECONDS = 300.0


class EnvelopeCipher:
    """Encrypts and decrypts values with keys from one key provider."""

    def __init__(
        self,
        key_provider: KeyProvider,
        *,
        cached_data_keys: int = DATA_KEY_CACHE_ENTRIES,
        data_key_seconds: float = DATA_KEY_CACHE_SECONDS,
    ) -> None:
        self._keys = key_provider
        # Recently unwrapped data keys, as ready AES-GCM ciphers, by the key-encryption key's
        # material and the wrapped key: a hit skips the unwrap and the cipher's key setup.
        self._data_keys: ExpiringCache[tuple[bytes, bytes], AESGCM] = ExpiringCache(
            cached_data_keys, data_key_seconds
        )

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        kek = self._keys.active_key()
        data_key = AESGCM.generate_key(bit_length=8 * DATA_KEY_BYTES)
        # RFC 3394 key wrap rather than AES-GCM for the data key: it is the NIST construction
        # for wrapping keys, it needs no nonce, so a long-lived key-encryption key never meets
        # GCM's random-nonce usage limit, and its built-in integrity check rejects a wrong key.
        wrapped = aes_key_wrap(_material(kek), data_key)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _gcm_aad(associated_data))
        return _header(kek.id) + wrapped + nonce + ciphertext

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        key_id = key_id_of(blob)
        try:
            kek = self._keys.key(key_id)
        except ConfigurationError:
            raise ValueIntegrityError(
                f"the value was encrypted with key '{key_id}', which the key provider does not hold"
            ) from None
        body = blob[2 + len(key_id) :]
        wrapped = body[:WRAPPED_KEY_BYTES]
        nonce = body[WRAPPED_KEY_BYTES : WRAPPED_KEY_BYTES + NONCE_BYTES]
        ciphertext = body[WRAPPED_KEY_BYTES + NONCE_BYTES :]
        try:
            cipher = self._data_key(_material(kek), wrapped)
            return cipher.decrypt(nonce, ciphertext, _gcm_aad(associated_data))
        except (InvalidUnwrap, InvalidTag):
            raise ValueIntegrityError(
                "the encrypted value failed authentication: it was altered or belongs elsewhere"
            ) from None

    def _data_key(self, material: bytes, wrapped: bytes) -> AESGCM:
        cipher = self._data_keys.get((material, wrapped))
        if cipher is None:
            cipher = AESGCM(aes_key_unwrap(material, wrapped))  # InvalidUnwrap: nothing kept
            self._data_keys.put((material, wrapped), cipher)
        return cipher

    def rewrap(self, blob: bytes) -> bytes:
        """The blob with its data key wrapped by the active key-encryption key instead: the
        nonce and ciphertext are untouched, the value is never decrypted. A blob already under
        the active key comes back as it is; one whose data key does not unwrap raises
        `ValueIntegrityError`."""
        key_id = key_id_of(blob)
        active = self._keys.active_key()
        if key_id == active.id:
            return blob
        try:
            kek = self._keys.key(key_id)
        except ConfigurationError:
            raise ValueIntegrityError(
                f"the data key is wrapped with key '{key_id}', which the key provider does not hold"
            ) from None
        body = blob[2 + len(key_id) :]
        try:
            data_key = aes_key_unwrap(_material(kek), body[:WRAPPED_KEY_BYTES])
        except InvalidUnwrap:
            raise ValueIntegrityError(
                f"the data key does not unwrap with key '{key_id}': the blob was altered"
            ) from None
        rewrapped = aes_key_wrap(_material(active), data_key)
        return _header(active.id) + rewrapped + body[WRAPPED_KEY_BYTES:]


def key_id_of(blob: bytes) -> str:
    """The id of the key-encryption key a blob's data key is wrapped with."""
    if len(blob) < 2:
        raise ValueIntegrityError("the encrypted value is truncated")
    if blob[0] != FORMAT_VERSION:
        raise ValueIntegrityError("the encrypted value has an unknown format version")
    key_id_length = blob[1]
    if len(blob) < 2 + key_id_length + WRAPPED_KEY_BYTES + NONCE_BYTES + TAG_BYTES:
        raise ValueIntegrityError("the encrypted value is truncated")
    key_id = blob[2 : 2 + key_id_length].decode("ascii", errors="replace")
    if not (key_id and key_id.isascii() and key_id.isprintable()):
        raise ValueIntegrityError("the encrypted value has a malformed key id")
    return key_id


def _header(key_id: str) -> bytes:
    if not (key_id.isascii() and key_id.isprintable() and 0 < len(key_id) <= MAX_KEY_ID_BYTES):
        raise ConfigurationError(f"key id {key_id!r} must be 1 to 255 printable ASCII characters")
    return bytes([FORMAT_VERSION, len(key_id)]) + key_id.encode("ascii")


def _gcm_aad(associated_data: bytes) -> bytes:
    return bytes([FORMAT_VERSION]) + associated_data


def _material(kek: KeyEncryptionKey) -> bytes:
    if kek.material is None:
        raise ConfigurationError(
            f"key '{kek.id}' is held by a KMS; envelope encryption needs local key material"
        )
    return kek.material
