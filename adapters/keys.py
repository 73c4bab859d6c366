"""Key-encryption keys held locally: in an environment variable or in a key file.

Key ids are derived from the key with HMAC-SHA256, so they are stable and reveal nothing about
the key. No message, log line or repr here ever shows key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.domain.errors import ConfigurationError
from ports.security import KeyEncryptionKey, KeyProvider

ENV_VAR = "SECRETS_MASTER_KEY"
PREVIOUS_ENV_VAR = "SECRETS_MASTER_KEY_PREVIOUS"
KEY_BYTES = 32
KEY_FILE_FORMAT = 1
CHECKSUM_KEY_INFO = b"secret-management value checksum"
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")

log = logging.getLogger(__name__)


class EnvKeyProvider(KeyProvider):
    """The active key, base64-encoded in `SECRETS_MASTER_KEY`, and the keys it replaced in
    `SECRETS_MASTER_KEY_PREVIOUS` (comma-separated, newest first), which only unwrap.

    The checksum key (and so the audit checkpoint key) is derived from the oldest key given:
    rotating is moving the key to the front of the previous ones and setting a new one, and
    that oldest key stays listed, or every stored checksum and checkpoint would stop matching.
    """

    name = "env"

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        if not environ.get(ENV_VAR):
            raise ConfigurationError(f"{ENV_VAR} is not set", details={"key": ENV_VAR})
        materials = [decode_key(environ[ENV_VAR], ENV_VAR)]
        previous = [part for part in environ.get(PREVIOUS_ENV_VAR, "").split(",") if part.strip()]
        materials += [
            decode_key(encoded, f"{PREVIOUS_ENV_VAR} (entry {number})")
            for number, encoded in enumerate(previous, start=1)
        ]
        keys = [
            KeyEncryptionKey(derive_key_id("env", material), material) for material in materials
        ]
        self._key = keys[0]
        self._keys = {key.id: key for key in keys}
        self._checksum_key = HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=CHECKSUM_KEY_INFO
        ).derive(materials[-1])

    def active_key(self) -> KeyEncryptionKey:
        return self._key

    def key(self, key_id: str) -> KeyEncryptionKey:
        if key_id not in self._keys:
            raise ConfigurationError(
                f"key '{key_id}' is neither the key in {ENV_VAR} (that one is "
                f"'{self._key.id}') nor one in {PREVIOUS_ENV_VAR}"
            )
        return self._keys[key_id]

    def checksum_key(self) -> bytes:
        return self._checksum_key

    def rotate(self) -> KeyEncryptionKey:
        raise ConfigurationError(
            f"the env key provider is rotated by its environment: put the current key first in "
            f"{PREVIOUS_ENV_VAR}, a new one (openssl rand -base64 32) in {ENV_VAR}, restart "
            "every process, then run `secretctl keys rewrap`"
        )


class FileKeyProvider(KeyProvider):
    """Key versions in a JSON file readable by its owner alone.

    The file is `{"format": 1, "active": "<id>", "keys": {"<id>": "<base64>"},
    "checksum_key": "<base64>"}`. With `create`, a missing file is generated.
    """

    name = "file"

    def __init__(self, path: str | os.PathLike[str], create: bool) -> None:
        self.path = Path(path)
        if create and not self.path.exists():
            self._create()
        self._load()

    def active_key(self) -> KeyEncryptionKey:
        # Another process may have rotated the key: new values take the new key at once,
        # so a re-wrap that follows the rotation leaves nothing behind (one stat per write).
        if self._version() != self._loaded_version:
            self._load()
        return KeyEncryptionKey(self._active, self._materials[self._active])

    def key(self, key_id: str) -> KeyEncryptionKey:
        if key_id not in self._materials:
            self._load()  # another process may have rotated the key since this one loaded it
        if key_id not in self._materials:
            raise ConfigurationError(f"key '{key_id}' is not in the key file {self.path}")
        return KeyEncryptionKey(key_id, self._materials[key_id])

    def checksum_key(self) -> bytes:
        return self._checksum_key

    def rotate(self) -> KeyEncryptionKey:
        """Add a new active key version. Older versions stay, to unwrap what they wrapped."""
        self._load()
        key_id, material = _generate_key()
        materials = {**self._materials, key_id: material}
        _write_key_file(self.path, materials, key_id, self._checksum_key, replace=True)
        self._load()
        log.warning("key file %s: new active key '%s'; back the file up again", self.path, key_id)
        return self.active_key()

    def _create(self) -> None:
        key_id, material = _generate_key()
        checksum_key = secrets.token_bytes(KEY_BYTES)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                _write_key_file(self.path, {key_id: material}, key_id, checksum_key, replace=False)
            except FileExistsError:
                return  # another process created it first: use that one
        except OSError as error:  # a directory it cannot write, a file where a directory goes
            raise ConfigurationError(
                f"cannot create the key file {self.path}: {error.strerror}",
                details={"key": "keys.path"},
            ) from None
        log.warning(
            "created a new key file at %s: back it up, the values it protects cannot be read "
            "without it",
            self.path,
        )

    def _version(self) -> tuple[int, int, int]:
        try:
            status = self.path.stat()
        except OSError:
            return (0, 0, 0)  # _load reports it
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def _load(self) -> None:
        self._loaded_version = self._version()
        document = _read_private_json(self.path)
        keys = document.get("keys")
        active = document.get("active")
        if document.get("format") != KEY_FILE_FORMAT or not isinstance(keys, dict):
            raise ConfigurationError(f"{self.path} is not a format {KEY_FILE_FORMAT} key file")
        if not isinstance(active, str) or active not in keys:
            raise ConfigurationError(f"{self.path}: 'active' must name one of its keys")
        for key_id in keys:
            if not KEY_ID_PATTERN.fullmatch(key_id):
                raise ConfigurationError(
                    f"{self.path}: key id {key_id!r} must be 1 to 64 letters, digits, '.', '_', '-'"
                )
        self._materials = {
            key_id: decode_key(encoded, f"{self.path}: keys.{key_id}")
            for key_id, encoded in keys.items()
        }
        self._active = active
        self._checksum_key = decode_key(document.get("checksum_key"), f"{self.path}: checksum_key")


def decode_key(encoded: object, setting: str) -> bytes:
    """The 32 bytes of a base64-encoded key. Errors name the setting, never the value."""
    if isinstance(encoded, str):
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            material = b""
        if len(material) == KEY_BYTES:
            return material
    raise ConfigurationError(
        f"{setting} must be {KEY_BYTES} random bytes, base64-encoded "
        "(generate one with: openssl rand -base64 32)",
        details={"key": setting},
    )


def derive_key_id(prefix: str, material: bytes) -> str:
    """A stable, non-reversible id for a key: `<prefix>-` and 12 hex digits of an HMAC."""
    return f"{prefix}-{hmac.new(material, b'key-id', hashlib.sha256).hexdigest()[:12]}"


def _generate_key() -> tuple[str, bytes]:
    material = secrets.token_bytes(KEY_BYTES)
    return derive_key_id("file", material), material


def _write_key_file(
    path: Path, materials: Mapping[str, bytes], active: str, checksum_key: bytes, *, replace: bool
) -> None:
    document = {
        "format": KEY_FILE_FORMAT,
        "active": active,
        "keys": {key_id: _encode(material) for key_id, material in materials.items()},
        "checksum_key": _encode(checksum_key),
    }
    _write_private(path, json.dumps(document, indent=2).encode(), replace=replace)


def _encode(material: bytes) -> str:
    return base64.b64encode(material).decode("ascii")


def _read_private_json(path: Path) -> dict[str, object]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise ConfigurationError(f"the key file {path} does not exist") from None
    except OSError as error:
        raise ConfigurationError(f"the key file {path} cannot be read: {error.strerror}") from None
    if mode & 0o077:
        raise ConfigurationError(
            f"the key file {path} is accessible to other users (mode {mode:04o}); "
            f"restrict it with: chmod 600 {path}"
        )
    try:
        document = json.loads(path.read_bytes())
    except OSError as error:
        raise ConfigurationError(f"the key file {path} cannot be read: {error.strerror}") from None
    except ValueError:
        raise ConfigurationError(f"the key file {path} is not valid JSON") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"the key file {path} is not a JSON object")
    return document


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write a file in one step, readable by its owner alone from its first byte.

    Without `replace`, an existing file is never overwritten (`FileExistsError`).
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # unlike a rename, fails when the path exists
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temporary.unlink(missing_ok=True)
