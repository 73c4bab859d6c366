"""The change stream's source: the durable, ordered change events (`core.changes`).

Events are written in the transaction of the change they report (`OutboxRepository.record_change`)
and read back in the order of their cursor, a monotonic integer, by any process.
"""

from __future__ import annotations

import abc

from core.domain.changes import ChangeRecord


class ChangeSource(abc.ABC):
    @abc.abstractmethod
    def head(self) -> int:
        """The highest cursor written so far (0 when there is none)."""

    @abc.abstractmethod
    def after(self, cursor: int, limit: int, upto: int | None = None) -> list[ChangeRecord]:
        """Up to `limit` events with a cursor above `cursor` (and at most `upto`), in order."""
