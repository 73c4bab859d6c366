"""The `files` backend: each version's value in its own file, `<directory>/<secret>/<locator>`.

A complete, small plugin: settings checked at start, values bound to the version key they were
written for, OS errors translated into the service's errors, idempotent destroy and purge, and a
health check with its latency. Files are written with mode 0600 in directories of mode 0700,
but unencrypted: use it for development, or on an encrypted volume.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.domain.errors import BackendUnavailable, NotFound, ValueIntegrityError, ValueTooLarge
from core.domain.values import SecretValue, VersionKey
from plugins import hookimpl
from plugins.backend_settings import BackendSettings
from ports.storage import (
    BackendCapabilities,
    BackendContext,
    BackendHealth,
    BackendPlugin,
    StorageBackend,
)

MAX_VALUE_BYTES = 1024 * 1024


class FileBackend(StorageBackend):
    """Locators are `<version>-<random>`: the version they were written for, and a name no
    retried or concurrent write can reuse. The secret's id is the directory, so a locator read
    under another key finds nothing there, or names another version and is refused."""

    capabilities = BackendCapabilities(max_value_bytes=MAX_VALUE_BYTES)

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    def put(self, key: VersionKey, value: SecretValue) -> str:
        if len(value) > MAX_VALUE_BYTES:
            raise ValueTooLarge(
                f"backend '{self.name}' stores values up to {MAX_VALUE_BYTES} bytes",
                details={"limit": MAX_VALUE_BYTES},
            )
        locator = f"{key.version}-{secrets.token_hex(8)}"
        folder = self.directory / str(key.secret_id)
        partial = folder / f".{locator}.partial"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(value.reveal())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, folder / locator)  # whole, or not at all
        except OSError as error:
            raise BackendUnavailable(self.name, error.strerror or type(error).__name__) from None
        return locator

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        try:
            return SecretValue(self._path(key, locator).read_bytes())
        except FileNotFoundError:
            raise NotFound(f"backend '{self.name}' holds no value at {locator!r}") from None
        except OSError as error:
            raise BackendUnavailable(self.name, error.strerror or type(error).__name__) from None

    def destroy(self, key: VersionKey, locator: str) -> None:
        try:
            self._path(key, locator).unlink(missing_ok=True)
        except OSError as error:
            raise BackendUnavailable(self.name, error.strerror or type(error).__name__) from None

    def purge(self, secret_id: uuid.UUID) -> None:
        try:
            shutil.rmtree(self.directory / str(secret_id))
        except FileNotFoundError:
            pass  # purged already
        except OSError as error:
            raise BackendUnavailable(self.name, error.strerror or type(error).__name__) from None

    def health(self) -> BackendHealth:
        started = time.perf_counter()
        healthy = os.access(self.directory, os.R_OK | os.W_OK | os.X_OK)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return BackendHealth(healthy, elapsed_ms, "" if healthy else f"cannot use {self.directory}")

    def _path(self, key: VersionKey, locator: str) -> Path:
        version, _, token = locator.partition("-")
        if not (version.isdigit() and len(token) == 16 and token.isalnum()):
            raise NotFound(f"{locator!r} is not a locator of backend '{self.name}'")
        if int(version) != key.version:
            raise ValueIntegrityError(
                f"locator {locator!r} belongs to version {version}, not {key.version}"
            )
        return self.directory / str(key.secret_id) / locator


def files_backend(name: str, settings: Mapping[str, Any], context: BackendContext) -> FileBackend:
    """Made from the instance's settings: `directory` (created, mode 0700), nothing else."""
    options = BackendSettings(name, settings, known=("directory",))
    directory = Path(options.required_text("directory"))
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise options.error("directory", f"cannot be created: {error.strerror}") from None
    return FileBackend(name, directory)


@hookimpl
def secret_management_register_backends() -> list[BackendPlugin]:
    return [
        BackendPlugin(
            name="files",
            factory=files_backend,
            description="one file per value (example plugin; unencrypted, mode 0600)",
        )
    ]
