"""Ports for keys, checksums, identity and time."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.domain.values import Principal


@dataclass(frozen=True)
class KeyEncryptionKey:
    """One version of a key-encryption key. `material` is None when a KMS holds it."""

    id: str
    material: bytes | None

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(id={self.id!r})"


class KeyProvider(abc.ABC):
    """Where key-encryption keys come from: an environment variable, a key file, a KMS."""

    name: str

    @abc.abstractmethod
    def active_key(self) -> KeyEncryptionKey:
        """The key new data keys are wrapped with."""

    @abc.abstractmethod
    def key(self, key_id: str) -> KeyEncryptionKey:
        """A key by id, to unwrap data keys written earlier. Raises `ConfigurationError`."""

    @abc.abstractmethod
    def checksum_key(self) -> bytes:
        """A stable key for the keyed checksums of values (never a plain hash of a value)."""

    def rotate(self) -> KeyEncryptionKey:
        """Add a new active key version; older ones stay, to unwrap what they wrapped.
        Raises `NotImplementedError` where the service cannot (an adapter may raise
        `ConfigurationError` saying how to rotate instead)."""
        raise NotImplementedError(f"the {self.name} key provider cannot rotate its key itself")


class Authenticator(abc.ABC):
    @abc.abstractmethod
    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for; raises `Unauthenticated`."""


class Clock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


@dataclass(frozen=True)
class KeyProviderContext:
    """What the host gives a key provider factory: where data lives and the run mode."""

    data_dir: str
    environ: Mapping[str, str]
    production: bool


KeyProviderFactory = Callable[[Mapping[str, Any], KeyProviderContext], KeyProvider]


@dataclass(frozen=True)
class KeyProviderPlugin:
    """A kind of key provider a plugin contributes (`[keys] provider = "<name>"`)."""

    name: str
    factory: KeyProviderFactory
    description: str = ""
