"""Long-running jobs (migrations between backends) and the per-version progress of each.

A job is claimed under a lease (`core.domain.work.Lease`); the repository is `ports.jobs`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
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

    # -- state changes: each returns the changed job ----------------------------------------

    def touched(self, at: datetime) -> Job:
        return replace(self, updated_at=at)

    def checked(self, at: datetime, misfits: list[dict[str, Any]]) -> Job:
        """Every value to move was read: running, or refused with what does not fit."""
        if misfits:
            return replace(
                self,
                started_at=self.started_at or at,
                state=JobState.REFUSED,
                report={**self.report, "misfits": misfits},
            )
        return replace(self, started_at=self.started_at or at, state=JobState.RUNNING)

    def counted(self, counter: str, more: int) -> Job:
        return replace(
            self, counters={**self.counters, counter: self.counters.get(counter, 0) + more}
        )

    def reported(self, section: str, entries: list[dict[str, Any]]) -> Job:
        """`entries` added to the report's list `section`."""
        return replace(
            self, report={**self.report, section: [*self.report.get(section, []), *entries]}
        )

    def count_switched(self, versions_copied: int) -> Job:
        """One more unit done, which copied `versions_copied` versions."""
        return replace(self, done=self.done + 1).counted("versions_copied", versions_copied)

    def count_skipped(self) -> Job:
        return replace(self, done=self.done + 1)

    def count_failed(self, failure: dict[str, Any], *, was_done: bool) -> Job:
        """One more unit failed (no longer done, if it was counted so)."""
        failed = replace(self, failed=self.failed + 1, done=self.done - was_done)
        return failed.reported("failures", [failure])

    def released(self, reason: str | None = None) -> Job:
        """No process holds it any more; `reason`, if any, is why it stopped."""
        return replace(
            self,
            last_error=None if reason is None else reason[:512],
            lease_owner=None,
            lease_until=None,
        )

    def finished(self, at: datetime) -> Job:
        """The end of a run: failed if a unit failed (a refused job stays refused)."""
        state = self.state
        if state == JobState.RUNNING:
            state = JobState.FAILED if self.failed else JobState.SUCCEEDED
        return replace(self, state=state, finished_at=at).released()


@dataclass(frozen=True)
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

    def with_state(self, state: ItemState, at: datetime) -> JobItem:
        """In `state`, its copy (if any) kept."""
        return replace(self, state=state, updated_at=at)

    def without_copy(self, state: ItemState, at: datetime) -> JobItem:
        """In `state`, with no copy on the target (it was removed, or never made)."""
        return replace(self, state=state, target_locator=None, updated_at=at)

    def copied_to(self, locator: str, at: datetime) -> JobItem:
        return replace(self, state=ItemState.COPIED, target_locator=locator, updated_at=at)

    def failed_with(self, reason: str, at: datetime, *, keep_copy: bool) -> JobItem:
        locator = self.target_locator if keep_copy else None
        return replace(
            self, state=ItemState.FAILED, error=reason[:512], target_locator=locator, updated_at=at
        )
