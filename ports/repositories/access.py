"""The access repositories: role bindings, service accounts and their API tokens.

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from core.domain.access import RoleBinding
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.paging import Page, PageRequest
from core.domain.values import ScopeRef


class RoleBindingRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, binding: RoleBinding) -> None:
        """Insert a binding; its scope must exist."""

    @abc.abstractmethod
    def get(self, binding_id: UUID) -> RoleBinding | None: ...

    @abc.abstractmethod
    def delete(self, binding_id: UUID) -> None: ...

    @abc.abstractmethod
    def for_identities(self, identities: Sequence[str], now: datetime) -> list[RoleBinding]:
        """The unexpired bindings naming any of `identities`."""

    @abc.abstractmethod
    def at_or_above(self, scope_path: str, now: datetime) -> list[RoleBinding]:
        """The unexpired bindings held at the scope with this path or at any ancestor."""

    @abc.abstractmethod
    def search(
        self, scope: ScopeRef | None, principal: str | None, page: PageRequest
    ) -> Page[RoleBinding]:
        """Bindings held at exactly `scope` and/or naming `principal`."""


class ServiceAccountRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, account: ServiceAccount) -> None:
        """Insert an account; raises `Conflict` if its name is taken."""

    @abc.abstractmethod
    def get(self, account_id: UUID) -> ServiceAccount | None: ...

    @abc.abstractmethod
    def search(self, scope: ScopeRef | None, page: PageRequest) -> Page[ServiceAccount]: ...

    @abc.abstractmethod
    def delete(self, account_id: UUID) -> None:
        """Remove the account, its tokens and the role bindings naming it."""

    @abc.abstractmethod
    def add_token(self, token: ApiToken) -> None: ...

    @abc.abstractmethod
    def tokens(self, account_id: UUID) -> list[ApiToken]: ...

    @abc.abstractmethod
    def token(self, token_id: UUID) -> ApiToken | None:
        """One token by id (revoked and expired ones too)."""

    @abc.abstractmethod
    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, ServiceAccount] | None:
        """The token with this SHA-256 hash and its account, or None."""

    @abc.abstractmethod
    def revoke_token(self, token_id: UUID, at: datetime) -> None: ...

    @abc.abstractmethod
    def stale_tokens(
        self, unused_since: datetime, now: datetime
    ) -> list[tuple[ApiToken, ServiceAccount]]:
        """Live tokens (not revoked, not expired) unused since `unused_since`: last used
        before it, or never used and issued before it."""

    @abc.abstractmethod
    def touch_token(self, token_id: UUID, at: datetime, not_since: datetime) -> None:
        """Record a use, unless one was recorded after `not_since` (to spare writes)."""
