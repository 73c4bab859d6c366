"""A secret's rotation policy, and the result of one run of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class RotationPolicy:
    """When and how a secret rotates: every `interval_seconds` or on a `cron` schedule, with
    the rotator named and its settings (references to keys, never keys)."""

    secret_id: UUID
    rotator: str
    next_run_at: datetime
    created_at: datetime
    created_by: str
    settings: dict[str, Any] = field(default_factory=dict)
    interval_seconds: int | None = None
    cron: str | None = None
    grace_seconds: int = 0
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class RotationRun:
    """The result of one rotation, as its policy records it."""

    secret_id: UUID
    at: datetime
    status: str  # "success" or "failed"
    error: str | None = None
    next_run_at: datetime | None = None
    worker: str | None = None
