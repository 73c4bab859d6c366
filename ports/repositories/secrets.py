"""The secret repository: secrets and their versions (metadata; values live in backends).

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from uuid import UUID

from core.domain.access import AccessQuery
from core.domain.paging import Page, PageRequest, Slice
from core.domain.secrets import (
    ListPosition,
    ResolveCandidate,
    Secret,
    SecretFilter,
    SecretVersion,
)
from core.domain.values import ScopeRef


class SecretRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, secret: Secret) -> None:
        """Insert a new secret; raises `Conflict` if its name is taken in its scope."""

    @abc.abstractmethod
    def get(self, secret_id: UUID) -> Secret | None:
        """A secret by id, deleted or not."""

    def lock(self, secret_id: UUID) -> Secret | None:
        """`get`, with the secret's row locked until this unit of work ends: its other writers
        wait for it, so a write without `If-Match` never finds the revision moved under it. A
        store whose transactions never overlap need not override this."""
        return self.get(secret_id)

    @abc.abstractmethod
    def get_by_name(self, scope: ScopeRef, environment: str | None, name: str) -> Secret | None:
        """A secret by its path, deleted or not."""

    def get_with_version(
        self, secret_id: UUID, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        """A secret with one of its versions (the current one when `version` is None), for a
        value read: in one round trip where the store can, with the version's stored value
        when it lives in the service's own database (`SecretVersion.stored`)."""
        secret = self.get(secret_id)
        if secret is None:
            return None
        number = secret.current_version if version is None else version
        return secret, self.get_version(secret_id, number)

    def get_by_name_with_version(
        self, scope: ScopeRef, environment: str | None, name: str, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        """`get_with_version` by the secret's path."""
        secret = self.get_by_name(scope, environment, name)
        if secret is None:
            return None
        number = secret.current_version if version is None else version
        return secret, self.get_version(secret.id, number)

    @abc.abstractmethod
    def update(self, secret: Secret, expected_revision: int) -> None:
        """Save `secret` only if its stored revision is still `expected_revision`.

        Raises `PreconditionFailed` when another writer got there first. The caller has
        already set `secret.revision` to the next value.
        """

    @abc.abstractmethod
    def delete(self, secret_id: UUID) -> None:
        """Remove the secret's rows for good (its versions too)."""

    @abc.abstractmethod
    def search(
        self, criteria: SecretFilter, page: PageRequest, access: AccessQuery
    ) -> Page[Secret]:
        """Secrets matching `criteria` that `access` lets the caller see, ordered by scope,
        name and environment."""

    @abc.abstractmethod
    def search_after(
        self,
        criteria: SecretFilter,
        after: ListPosition | None,
        page_size: int,
        access: AccessQuery,
    ) -> Slice[Secret, ListPosition]:
        """Keyset paging of one scope (`criteria.scope` is set): up to `page_size` secrets
        matching `criteria` that `access` lets the caller see, ordered by name and environment,
        strictly after `after` (from the start if None), with the position of the last one as
        `next` when more follow. Reads no further than the page; counts no total."""

    @abc.abstractmethod
    def resolve(
        self,
        scopes: Sequence[ScopeRef],
        environment: str | None,
        visible: AccessQuery,
        readable: AccessQuery,
    ) -> list[ResolveCandidate]:
        """Live secrets of every scope in `scopes` and all their ancestors, for `environment`
        (and environment-agnostic ones), that `visible` lets the caller see — in one query."""

    @abc.abstractmethod
    def add_version(self, version: SecretVersion) -> None:
        """Insert a version; raises `Conflict` if that number exists already."""

    @abc.abstractmethod
    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        """One version of a secret, or None."""

    @abc.abstractmethod
    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        """Every version of a secret, oldest first."""

    @abc.abstractmethod
    def update_version(self, version: SecretVersion) -> None:
        """Save a version's state, `expires_at`, `not_before` and `disable_at` (nothing else
        of a version ever changes); raises `NotFound` if there is no such version."""

    @abc.abstractmethod
    def relocate_version(self, version: SecretVersion, backend: str, locator: str) -> None:
        """Point a version at a copy of its value in another backend (a migration), only if it
        still points where `version` says; raises `PreconditionFailed` if it does not."""

    def add_many(self, secrets: Sequence[Secret]) -> None:
        """`add` for many secrets at once (an import); one `add` each unless overridden."""
        for secret in secrets:
            self.add(secret)

    def update_many(self, updates: Sequence[tuple[Secret, int]]) -> None:
        """`update` for many (secret, expected revision) pairs; `PreconditionFailed` if any
        moved on. One `update` each unless overridden."""
        for secret, expected_revision in updates:
            self.update(secret, expected_revision)

    def add_versions(self, versions: Sequence[SecretVersion]) -> None:
        """`add_version` for many versions at once; one `add_version` each unless overridden."""
        for version in versions:
            self.add_version(version)

    def current_versions(self, secret_ids: Sequence[UUID]) -> dict[UUID, SecretVersion]:
        """The current version of each of these secrets that has one, by secret id; one
        `get` and `get_version` each unless overridden."""
        found = {}
        for secret_id in secret_ids:
            secret = self.get(secret_id)
            current = self.get_version(secret_id, secret.current_version) if secret else None
            if current is not None:
                found[secret_id] = current
        return found
