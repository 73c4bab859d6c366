"""Key-encryption-key versions (ids and states, never key bytes) and the envelope blobs they
wrap."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


class KeyState(enum.StrEnum):
    ACTIVE = "active"  # wraps new data keys
    PREVIOUS = "previous"  # replaced; still unwraps the data keys it wrapped
    RETIRED = "retired"  # replaced, and no stored data key is wrapped with it any more


@dataclass(frozen=True)
class StoredBlob:
    """One stored envelope blob (a version's encrypted value) and the key it is wrapped with."""

    id: UUID
    key_id: str
    blob: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyVersion:
    """A key-encryption-key version as the registry knows it."""

    id: str
    provider: str
    state: KeyState
    created_at: datetime
