"""Long-running jobs (migrations between backends; later re-keys): the job rows, their per-item
progress, and the repository that claims them under a lease.

A job is claimed like the worker's other work (`core.domain.work.Lease`): a conditional update
that only a free job passes (never claimed, or its lease run out), so one process runs a job at a
time and a process that died leaves it to be taken again. Every write of a running job's
progress is made only while its lease is still held (`JobRepository.hold`), in the transaction
that changes what the progress describes.
"""

from __future__ import annotations

import abc
from uuid import UUID

from core.domain.jobs import Job, JobItem
from core.domain.secrets import SecretFilter
from core.domain.work import Lease


class JobRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, job: Job, items: list[JobItem]) -> None:
        """Insert a new job with its planned items."""

    @abc.abstractmethod
    def get(self, job_id: UUID) -> Job | None: ...

    @abc.abstractmethod
    def search(self, kind: str, limit: int) -> list[Job]:
        """Jobs of `kind`, newest first."""

    @abc.abstractmethod
    def unfinished(self, kind: str) -> list[Job]:
        """Jobs of `kind` that are neither finished nor refused, oldest first."""

    @abc.abstractmethod
    def claim(
        self,
        job_id: UUID | None,
        kind: str,
        states: tuple[str, ...],
        lease: Lease,
        *,
        take_over: bool = False,
    ) -> Job | None:
        """Claim job `job_id` (or, without one, the oldest of `kind`) if it is in one of
        `states` and free — or, with `take_over`, even if another holds a live lease (its
        holder is known to be gone); None if it is not. On PostgreSQL the candidate row is
        selected `FOR UPDATE SKIP LOCKED`."""

    @abc.abstractmethod
    def hold(self, job_id: UUID, lease: Lease) -> bool:
        """Extend `lease.worker`'s lease on the job to `lease.until`, if it still holds it;
        whether it does. Call it first in every transaction that writes the job's progress."""

    @abc.abstractmethod
    def update(self, job: Job) -> None:
        """Save the job's state, progress, report, times and lease columns."""

    @abc.abstractmethod
    def items(self, job_id: UUID, secret_id: UUID | None = None) -> list[JobItem]:
        """The job's items (of one secret), by secret and version."""

    @abc.abstractmethod
    def pending_secrets(self, job_id: UUID, finished: tuple[str, ...]) -> list[UUID]:
        """The secrets with an item whose state is not in `finished`, in a stable order."""

    @abc.abstractmethod
    def add_items(self, items: list[JobItem]) -> None:
        """Insert items found later (a version written while the job ran)."""

    @abc.abstractmethod
    def update_item(self, item: JobItem) -> None:
        """Save an item's state, target locator and error."""

    @abc.abstractmethod
    def kept_copies(self, secret_id: UUID, backend: str, state: str) -> bool:
        """Whether a job left copies of the secret's values on `backend`: an item (not the
        secret's own, version 0) whose source is `backend`, in `state`."""

    @abc.abstractmethod
    def secrets_storing(
        self, backend: str, criteria: SecretFilter, current_only: bool
    ) -> list[UUID]:
        """Secrets matching `criteria` (`under_path`, `environment`, `prefix`), live or deleted,
        in every scope (personal ones too: nobody sees a value through a job), that use
        `backend` for new versions or keep a value there: in any version not destroyed, or
        with `current_only` in the current or pending one. Ordered by id."""
