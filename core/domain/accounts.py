"""Service accounts and their API tokens (only a token's SHA-256 is kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.domain.values import ScopeRef, ScopeType


@dataclass(frozen=True)
class ServiceAccount:
    """A non-human caller owned by a scope; it authenticates with API tokens issued here."""

    id: UUID
    name: str
    scope: ScopeRef
    scope_path: str
    description: str
    created_at: datetime
    created_by: str

    @property
    def principal(self) -> str:
        """`service:<name>` for an account of the global scope, else `service:<name>@<type>:<id>`:
        a name is its scope's own, so two organizations' `ci` are two principals."""
        if self.scope.type is ScopeType.GLOBAL:
            return f"service:{self.name}"
        return f"service:{self.name}@{self.scope.type.value}:{self.scope.id}"


@dataclass(frozen=True)
class ApiToken:
    """An API token's record: only the SHA-256 of the token is kept, never the token."""

    id: UUID
    account_id: UUID
    token_hash: str
    prefix: str
    created_at: datetime
    created_by: str
    description: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
