"""The unit of work: how core reads and writes its metadata, through the repositories
(`ports.repositories`) it holds.

Repositories never commit. A use case opens a unit of work, changes things, and commits
explicitly; leaving the `with` block without a commit rolls everything back.
"""

from __future__ import annotations

import abc
from typing import Protocol

from ports.jobs import JobRepository
from ports.repositories.access import RoleBindingRepository, ServiceAccountRepository
from ports.repositories.audit import AuditRepository
from ports.repositories.outbox import OutboxRepository
from ports.repositories.rotation import RotationPolicyRepository
from ports.repositories.scopes import ScopeRepository
from ports.repositories.secrets import SecretRepository
from ports.repositories.work import WorkQueueRepository


class UnitOfWork(abc.ABC):
    scopes: ScopeRepository
    secrets: SecretRepository
    bindings: RoleBindingRepository
    service_accounts: ServiceAccountRepository
    audit: AuditRepository
    rotations: RotationPolicyRepository
    outbox: OutboxRepository
    work: WorkQueueRepository
    jobs: JobRepository

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


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work. `read_only=True` promises that nothing will be written: the store
    may then skip the transaction (each read sees what is committed when it runs)."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...
