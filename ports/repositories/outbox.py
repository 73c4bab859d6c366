"""The outbox repository: events to deliver, and the change records they come from.

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from core.domain.changes import ChangeRecord
from core.domain.events import OutboxMessage


class OutboxRepository(abc.ABC):
    """Events waiting for delivery, written in the transaction of the change they report."""

    @abc.abstractmethod
    def add(self, messages: Sequence[OutboxMessage]) -> None: ...

    @abc.abstractmethod
    def get(self, message_id: UUID) -> OutboxMessage | None: ...

    @abc.abstractmethod
    def settle(self, message: OutboxMessage, worker: str) -> None:
        """Save a claimed message's delivery state (`delivered_at`, `attempts`,
        `next_attempt_at`, `last_error`) and release the claim, if `worker` still holds it."""

    @abc.abstractmethod
    def prune_delivered(self, before: datetime) -> int:
        """Delete messages delivered before `before`; how many went."""

    @abc.abstractmethod
    def record_change(self, change: ChangeRecord) -> None:
        """Append an event to the change stream's log (`core.changes`), giving it the next
        cursor; written whether or not any subscriber is configured."""

    @abc.abstractmethod
    def prune_changes(self, before: datetime) -> int:
        """Delete change-stream events written before `before`; how many went."""
