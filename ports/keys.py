"""Ports of key management: the envelope blobs a re-key job re-wraps, and the registry of
key-encryption-key versions (ids and states, never key bytes)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from core.domain.keys import KeyState, KeyVersion, StoredBlob
from ports.unit_of_work import UnitOfWork


class BlobRepository(abc.ABC):
    """The local backend's envelope blobs, inside the unit of work's transaction."""

    @abc.abstractmethod
    def outdated(self, active_key_id: str, after: UUID | None, limit: int) -> list[StoredBlob]:
        """Up to `limit` blobs not wrapped with `active_key_id`, in id order after `after`,
        locked until the transaction ends; rows another transaction holds are skipped (so
        concurrent runs share the work instead of waiting or repeating it)."""

    @abc.abstractmethod
    def replace(self, blobs: Sequence[StoredBlob]) -> None:
        """Store re-wrapped blobs, and their key ids, in place of the old ones."""

    @abc.abstractmethod
    def count_by_key(self) -> dict[str, int]:
        """How many blobs each key id wraps."""


class KeyRegistry(abc.ABC):
    @abc.abstractmethod
    def versions(self) -> list[KeyVersion]:
        """Every key version recorded, oldest first."""

    @abc.abstractmethod
    def record_active(self, key_id: str, provider: str, at: datetime) -> None:
        """Record `key_id` as the active key; the one active before becomes `previous`."""

    @abc.abstractmethod
    def set_state(self, key_id: str, state: KeyState) -> None: ...


class KeyUnitOfWork(UnitOfWork):
    """A unit of work that also reaches the blobs and the key registry."""

    blobs: BlobRepository
    keys: KeyRegistry

    def __enter__(self) -> KeyUnitOfWork:
        return self


class BlobRewrapper(Protocol):
    def rewrap(self, blob: bytes) -> bytes:
        """The blob with its data key wrapped by the active key, its value untouched; raises
        `ValueIntegrityError` when the data key does not unwrap."""
        ...
