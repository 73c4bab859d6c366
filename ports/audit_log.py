"""The audit log port: append audit events to the hash chain and commit them before returning.

A read changes nothing, so its success is recorded in a transaction of its own, and the value
is served only once that transaction has committed. How that transaction is made is the
adapter's business: one per call (`adapters.audit_log.TransactionalAuditLog`), or the events
of concurrent requests committed together (`adapters.group_commit.GroupCommit`). The use cases
read the same either way.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

from core.domain.audit import AuditEvent
from ports.unit_of_work import UnitOfWork


class StaleRead(Exception):
    """A read served from the cache met a change committed since: do it again from the store."""


class ChangeListener(Protocol):
    """Told of every successful attempt inside its unit of work (`core.events.ChangeFeed`
    turns the changes among them into outbox events that commit with them)."""

    def record_changes(self, uow: UnitOfWork, events: Sequence[AuditEvent]) -> None: ...

    def changes_in(self, events: Sequence[AuditEvent]) -> bool:
        """Whether `record_changes` would write anything for these events."""
        ...


class AuditLog(abc.ABC):
    """Appends events to the audit chain, durably."""

    @abc.abstractmethod
    def append(
        self,
        events: list[AuditEvent],
        changes: ChangeListener | None = None,
        requires_generation: int | None = None,
    ) -> list[AuditEvent]:
        """The events as chained (seq, hashes), once committed, each bounded
        (`AuditEvent.bounded`); `changes` is told of them in the same transaction. With
        `requires_generation`, raise `StaleRead` (and record nothing) if the change generation
        is another one under the chain's lock. Any failure of the store raises: nothing is
        answered before its event is durable."""
