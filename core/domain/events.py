"""The outbox: one event for one subscriber, and how its delivery is going."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class OutboxMessage:
    """One event for one subscriber (`target`), and how its delivery is going.

    A message with no `next_attempt_at` and no `delivered_at` was given up on.
    """

    id: UUID
    event_id: UUID
    type: str
    target: str
    payload: dict[str, Any]
    created_at: datetime
    secret_id: UUID | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None
