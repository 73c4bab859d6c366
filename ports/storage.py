"""The storage backend port: where secret values live, one write per version.

Metadata, versions, access control and audit always stay in the service's own tables; a
backend only stores values and hands back an opaque locator to read them again. Backends raise
the errors of `core.domain.errors` (never a vendor exception).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from core.domain.values import SecretValue, VersionKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend can do, so core can refuse early and adapt."""

    max_value_bytes: int
    native_versioning: bool = False
    native_soft_delete: bool = False
    # Values live in the service's own database: a read may hand `open_stored` the stored form
    # that came with the version's metadata, instead of calling `get`.
    stored_with_metadata: bool = False


@dataclass(frozen=True)
class BackendHealth:
    ok: bool
    latency_ms: float
    detail: str = ""


@dataclass(frozen=True)
class ExternalSecret:
    """A value already living in an external store, found by `list_external` for adoption."""

    external_name: str
    locator: str


class StorageBackend(abc.ABC):
    """One configured backend instance (e.g. `local`, `vault-prod`)."""

    name: str
    capabilities: BackendCapabilities

    @abc.abstractmethod
    def put(self, key: VersionKey, value: SecretValue) -> str:
        """Store the value of one version and return the locator to read it by."""

    def put_many(self, items: Sequence[tuple[VersionKey, SecretValue]]) -> list[str]:
        """Store several versions' values; their locators, in order. All or none: when it
        raises, none of them is left stored. One `put` each by default; a backend that can
        store many at once (one round trip, one transaction) overrides it."""
        locators: list[str] = []
        try:
            for key, value in items:
                locators.append(self.put(key, value))
        except BaseException:
            for (key, _), locator in zip(items, locators, strict=False):
                try:
                    self.destroy(key, locator)
                except Exception:  # the original failure is what the caller must see
                    log.warning(
                        "backend '%s': could not remove a value stored by a failed put_many",
                        self.name,
                        exc_info=True,
                    )
            raise
        return locators

    @abc.abstractmethod
    def get(self, key: VersionKey, locator: str) -> SecretValue:
        """Read a value written by `put` for this same key.

        A value is never served under another version's identity: a locator that belongs to a
        different key raises `ValueIntegrityError` (or `NotFound`), never returns that value.
        """

    def seal(self, key: VersionKey, value: SecretValue) -> tuple[str, bytes]:
        """The locator and stored form (a ciphertext) of a value that the service's own
        transaction stores along with the version's row, instead of `put`: one commit for both.
        Only backends whose capabilities say `stored_with_metadata` are asked."""
        raise NotImplementedError(f"backend '{self.name}' does not seal values")

    def open_stored(self, key: VersionKey, locator: str, stored: bytes) -> SecretValue:
        """The value of `get`, from its stored form read along with the version's metadata.
        Only backends whose capabilities say `stored_with_metadata` are asked."""
        raise NotImplementedError(f"backend '{self.name}' does not open stored values")

    @abc.abstractmethod
    def destroy(self, key: VersionKey, locator: str) -> None:
        """Remove one version's value for good. Destroying what is already gone is not an error."""

    @abc.abstractmethod
    def purge(self, secret_id: UUID) -> None:
        """Remove everything stored for a secret. Idempotent."""

    def list_external(self, prefix: str) -> Iterable[ExternalSecret]:
        """Values already in the store under `prefix`, for adoption. None by default."""
        return ()

    @abc.abstractmethod
    def health(self) -> BackendHealth:
        """Check that the backend answers, with the latency it took."""

    def close(self) -> None:  # noqa: B027 - an optional hook, a no-op unless overridden
        """Release connections; called when the service stops."""


@dataclass(frozen=True)
class BackendContext:
    """What the host gives a backend factory besides the instance's own settings.

    `database` is the service's SQLAlchemy engine (for backends that keep values in it) and
    `key_provider` the active key-encryption-key provider; backends that need neither ignore them.
    """

    database: Any
    key_provider: Any
    extras: Mapping[str, Any] = field(default_factory=dict)


BackendFactory = Callable[[str, Mapping[str, Any], BackendContext], StorageBackend]


@dataclass(frozen=True)
class BackendPlugin:
    """A kind of backend a plugin contributes: `plugin = "local"` in configuration picks it.

    `requires` names the importable modules the backend needs, and `extra` the
    `pip install 'secret-management[extra]'` that brings them, so that a missing SDK is reported
    clearly instead of as a traceback.
    """

    name: str
    factory: BackendFactory
    requires: tuple[str, ...] = ()
    extra: str | None = None
    description: str = ""
