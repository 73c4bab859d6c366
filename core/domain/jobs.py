"""Long-running jobs (migrations between backends) and the per-version progress of each.

A job is claimed under a lease (`core.domain.work.Lease`); the repository is `ports.jobs`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


class JobState(enum.StrEnum):
    PENDING = "pending"  # recorded; nothing read yet
    RUNNING = "running"  # checked; secrets being moved
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # finished; some secrets could not be moved (see the report)
    REFUSED = "refused"  # a value does not fit the target: nothing moved


class ItemState(enum.StrEnum):
    PENDING = "pending"
    WRITING = "writing"  # about to be put to the target: a crash here may leave a stray copy
    COPIED = "copied"  # in the target, read back and verified; `target_locator` set
    SWITCHED = "switched"  # the version row (or, for item 0, the secret) points at the target
    SOURCE_REMOVED = "source_removed"
    SKIPPED = "skipped"  # destroyed or purged while the job ran: nothing to move
    FAILED = "failed"


@dataclass
class Job:
    """One job. `params` are its kind's settings; `total`, `done` and `failed` count its units
    of work (secrets, for a migration) and `counters` anything else it counts; `report` is what
    it found (failures by secret, with reasons — never a value)."""

    id: UUID
    kind: str
    state: JobState
    params: dict[str, Any]
    created_by: str
    created_by_type: str
    created_at: datetime
    updated_at: datetime
    total: int = 0
    done: int = 0
    failed: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @property
    def remaining(self) -> int:
        return max(self.total - self.done - self.failed, 0)


@dataclass
class JobItem:
    """The progress of one secret version in a job: where its value was (`source_*`), where the
    job put its copy (`target_locator`, recorded before anything points at it) and its state."""

    job_id: UUID
    secret_id: UUID
    version: int
    state: ItemState
    source_backend: str
    source_locator: str
    updated_at: datetime
    target_locator: str | None = None
    error: str | None = None
