"""Export files sealed with a passphrase: scrypt derives a key, AES-256-GCM encrypts the file.

The sealed file, version 1 (integers are unsigned bytes):

    offset  size  field
    0       8     magic, ASCII "SMSEALED"
    8       1     format version: 1
    9       1     scrypt cost: log2(N)
    10      1     scrypt block size r
    11      1     scrypt parallelism p
    12      16    scrypt salt (random)
    28      12    AES-GCM nonce (random)
    40      1     length L of the format name
    41      L     format name, ASCII (`json`, `dotenv`…): what the plaintext is
    41+L    …     AES-256-GCM ciphertext of the export file, its 16-byte tag at the end

The key is scrypt(passphrase as UTF-8 in Unicode NFC, salt, N, r, p), 32 bytes. The whole header
(bytes 0 to 41+L) is the associated data, so any change to it — a cheaper cost, another format
name — fails authentication like a wrong passphrase does. Sealing uses N = 2^17, r = 8, p = 1
(128 MiB, about a third of a second). The header chooses the cost, so opening accepts only a
fixed range — N from 2^10 to 2^17, r = 8, p = 1 — and refuses any other file before a key is
derived: a file must not make the service spend more than a sealing costs.
"""

from __future__ import annotations

import os
import struct
import unicodedata

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from core.domain.errors import InvalidInput
from ports.formats import ExportCipher

MAGIC = b"SMSEALED"
VERSION = 1
HEADER = struct.Struct(">8sBBBB16s12sB")
LOG2_N_RANGE = range(10, 18)  # 2^10 (cheap, for tests) to 2^17 (what the service seals with)
BLOCK_SIZE = 8
PARALLELISM = 1


def _damaged() -> InvalidInput:
    return InvalidInput(
        "not a sealed export file of a version this service reads, or a damaged one",
        details={"field": "file"},
    )


class ScryptAesGcmCipher(ExportCipher):
    magic = MAGIC

    def __init__(self, log2_n: int = 17) -> None:
        if log2_n not in LOG2_N_RANGE:
            raise ValueError(f"log2_n must be in {LOG2_N_RANGE.start}..{LOG2_N_RANGE.stop - 1}")
        self._cost = (log2_n, BLOCK_SIZE, PARALLELISM)

    def seal(self, plaintext: bytes, passphrase: str, format_name: str) -> bytes:
        name = format_name.encode("ascii")
        salt, nonce = os.urandom(16), os.urandom(12)
        header = HEADER.pack(MAGIC, VERSION, *self._cost, salt, nonce, len(name)) + name
        key = _key(passphrase, salt, *self._cost)
        return header + AESGCM(key).encrypt(nonce, plaintext, header)

    def open(self, sealed: bytes, passphrase: str) -> tuple[str, bytes]:
        if len(sealed) < HEADER.size:
            raise _damaged()
        magic, version, log2_n, r, p, salt, nonce, length = HEADER.unpack_from(sealed)
        end = HEADER.size + length
        if (
            magic != MAGIC
            or version != VERSION
            or log2_n not in LOG2_N_RANGE
            or (r, p) != (BLOCK_SIZE, PARALLELISM)
            or len(sealed) < end + 16
        ):
            raise _damaged()
        header = sealed[:end]
        try:
            name = header[HEADER.size :].decode("ascii")
        except UnicodeDecodeError:
            raise _damaged() from None
        try:
            plaintext = AESGCM(_key(passphrase, salt, log2_n, r, p)).decrypt(
                nonce, sealed[end:], header
            )
        except InvalidTag:
            raise InvalidInput(
                "cannot open the sealed file: wrong passphrase, or the file was changed",
                details={"field": "passphrase"},
            ) from None
        return name, plaintext

    def __repr__(self) -> str:
        return f"ScryptAesGcmCipher(log2_n={self._cost[0]}, r={self._cost[1]}, p={self._cost[2]})"


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(secret)
