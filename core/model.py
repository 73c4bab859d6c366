"""The domain model: secrets, their immutable versions and the scopes that own them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from ports.values import ScopeRef, SecretValue

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


@dataclass
class Scope:
    """A node of the scope hierarchy as stored: its database id and its external name."""

    pk: int
    ref: ScopeRef
    parent_pk: int | None = None


@dataclass
class Secret:
    """A named secret's metadata. Its values live in a storage backend, one per version.

    `environment` is None for a secret that applies to every environment. `revision` grows with
    every change and is what check-and-set (ETag / If-Match) compares.
    """

    id: UUID
    scope: ScopeRef
    name: str
    backend: str
    created_at: datetime
    created_by: str
    environment: str | None = None
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

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class SecretVersion:
    """One immutable value of a secret, stored in `backend` under `locator`."""

    secret_id: UUID
    version: int
    backend: str
    locator: str
    checksum: str
    created_at: datetime
    created_by: str
    state: VersionState = VersionState.ENABLED
    expires_at: datetime | None = None


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


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = 50

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class Page:
    items: list[Secret]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class RevealedValue:
    """The answer to a value read: which version was served, and the value itself."""

    secret: Secret
    version: SecretVersion
    value: SecretValue
