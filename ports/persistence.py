"""Repositories and the unit of work: how core reads and writes its metadata.

Repositories never commit. A use case opens a unit of work, changes things, and commits
explicitly; leaving the `with` block without a commit rolls everything back.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING
from uuid import UUID

from ports.values import ScopeRef

if TYPE_CHECKING:  # the domain types are core's; ports only names them
    from core.model import Page, PageRequest, Scope, Secret, SecretFilter, SecretVersion


class ScopeRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, ref: ScopeRef) -> Scope | None:
        """The scope named `ref`, or None."""

    @abc.abstractmethod
    def add(self, ref: ScopeRef, parent_pk: int | None) -> Scope:
        """Register a scope; raises `Conflict` if it exists already."""


class SecretRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, secret: Secret) -> None:
        """Insert a new secret; raises `Conflict` if its name is taken in its scope."""

    @abc.abstractmethod
    def get(self, secret_id: UUID) -> Secret | None:
        """A secret by id, deleted or not."""

    @abc.abstractmethod
    def get_by_name(self, scope: ScopeRef, environment: str | None, name: str) -> Secret | None:
        """A secret by its path, deleted or not."""

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
    def search(self, criteria: SecretFilter, page: PageRequest) -> Page:
        """Secrets matching `criteria`, ordered by scope, name and environment."""

    @abc.abstractmethod
    def add_version(self, version: SecretVersion) -> None:
        """Insert a version; raises `Conflict` if that number exists already."""

    @abc.abstractmethod
    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        """One version of a secret, or None."""

    @abc.abstractmethod
    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        """Every version of a secret, oldest first."""


class UnitOfWork(abc.ABC):
    scopes: ScopeRepository
    secrets: SecretRepository

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every change since the unit of work began durable."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Discard what was not committed. Safe to call after a commit."""
