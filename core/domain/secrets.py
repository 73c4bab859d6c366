"""Secrets and their immutable versions: the stage labels, validity, what a listing asks for,
and a value read's answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from core.domain.values import ScopeRef, SecretValue

CONSUMERS = (
    "mcp_server",
    "llm_model",
    "cloud_integration",
    "git_provider",
    "database",
    "cicd",
    "environment",
    "other",
)


class VersionState(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    DESTROYED = "destroyed"


class Stage(enum.StrEnum):
    """A version's label, as AWS's AWSCURRENT / AWSPREVIOUS / AWSPENDING."""

    CURRENT = "current"
    PREVIOUS = "previous"
    PENDING = "pending"


@dataclass
class Secret:
    """A named secret's metadata. Its values live in a storage backend, one per version.

    `environment` is None for a secret that applies to every environment. `revision` grows with
    every change and is what check-and-set (ETag / If-Match) compares. The stage labels are
    pointers to version numbers: `current_version`, `previous_version` (the one it replaced) and
    `pending_version` (a rotation's new value until it is promoted); `latest_version` is the
    highest number given out, so the next version is always `latest_version + 1`.
    """

    id: UUID
    scope: ScopeRef
    name: str
    backend: str
    created_at: datetime
    created_by: str
    environment: str | None = None
    scope_path: str = ""
    type: str = "generic"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    consumer: str = "other"
    current_version: int = 0
    expires_at: datetime | None = None
    not_before: datetime | None = None
    max_versions: int | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    deleted_at: datetime | None = None
    purge_after: datetime | None = None
    revision: int = 1
    latest_version: int = 0
    previous_version: int | None = None
    pending_version: int | None = None

    def __post_init__(self) -> None:
        # No number at or below the current one is ever free again.
        self.latest_version = max(self.latest_version, self.current_version)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def stage_of(self, version: int) -> Stage | None:
        if version == self.current_version:
            return Stage.CURRENT
        if version == self.pending_version:
            return Stage.PENDING
        if version == self.previous_version:
            return Stage.PREVIOUS
        return None


@dataclass
class SecretVersion:
    """One immutable value of a secret, stored in `backend` under `locator`.

    Its state and validity may change; its value never does. `disable_at` ends the grace period
    of a version a rotation replaced. `stage` is derived from the secret's labels when a version
    is read (and ignored when one is written).
    """

    secret_id: UUID
    version: int
    backend: str
    locator: str
    checksum: str
    created_at: datetime
    created_by: str
    state: VersionState = VersionState.ENABLED
    expires_at: datetime | None = None
    not_before: datetime | None = None
    disable_at: datetime | None = None
    stage: Stage | None = field(default=None, compare=False)
    # The value's stored form (a ciphertext), when it came with the metadata in one round trip
    # from a backend that keeps values in the service's own database; never the value itself.
    stored: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Validity:
    """When a version's value may be served: from `not_before`, until `expires_at`."""

    expires_at: datetime | None = None
    not_before: datetime | None = None


@dataclass(frozen=True)
class SecretFilter:
    """What to list. None means "any"; `deleted` lists only soft-deleted secrets instead of
    live ones. `scope` matches one scope exactly, `scope_type` every scope of that type."""

    scope: ScopeRef | None = None
    scope_type: str | None = None
    environment: str | None = None
    type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None
    deleted: bool = False
    under_path: str | None = None  # the subtree of the scope with this path
    expires_before: datetime | None = None
    created_before: datetime | None = None
    # With a rotation policy whose run was due before this time, or whose last run failed.
    rotation_overdue_at: datetime | None = None


@dataclass(frozen=True)
class RevealedValue:
    """The answer to a value read: which version was served, and the value itself."""

    secret: Secret
    version: SecretVersion
    value: SecretValue


@dataclass(frozen=True)
class ResolveCandidate:
    """A secret that may take part in a resolution, its current version, and whether the
    caller may read its value."""

    secret: Secret
    current: SecretVersion
    value_readable: bool
