"""A running migration's job row: every write of its progress is made only while this runner
still holds the job's lease, in the transaction that changes what the progress describes."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from core.domain.errors import LeaseLost, ServiceError
from core.domain.jobs import Job, JobItem
from core.migration.shared import MigrationTools
from ports.unit_of_work import UnitOfWork


class JobProgress:
    """The job `job_id` as runner `runner` holds it."""

    def __init__(self, tools: MigrationTools, job_id: UUID, runner: str) -> None:
        self._tools = tools
        self.job_id = job_id
        self.runner = runner

    def change(self, uow: UnitOfWork, change: Callable[[Job], Job]) -> Job:
        """Change the job in this transaction, if this process still holds it."""
        if not uow.jobs.hold(self.job_id, self._tools.lease(self.runner)):
            raise LeaseLost(f"migration {self.job_id} was taken over by another process")
        job = uow.jobs.get(self.job_id)
        assert job is not None
        job = change(job).touched(self._tools.clock.now())
        uow.jobs.update(job)
        return job

    def save_item(self, item: JobItem) -> None:
        """Save an item (still holding the job)."""
        with self._tools.uow_factory() as uow:
            self.change(uow, lambda job: job)
            uow.jobs.update_item(item)
            uow.commit()

    def current(self) -> Job:
        with self._tools.uow_factory() as uow:
            job = uow.jobs.get(self.job_id)
        assert job is not None
        return job

    def stop(self, error: ServiceError) -> None:
        """A backend is down (or the lease was lost): record why and let the job be resumed."""
        try:
            with self._tools.uow_factory() as uow:
                self.change(uow, lambda job: job.released(error.message))
                uow.commit()
        except LeaseLost:
            pass  # another process runs it now

    def release(self, reason: str) -> None:
        """Give the job up, if this runner still holds it, recording why."""
        with self._tools.uow_factory() as uow:
            if not uow.jobs.hold(self.job_id, self._tools.lease(self.runner)):
                return
            job = uow.jobs.get(self.job_id)
            assert job is not None
            uow.jobs.update(job.released(reason).touched(self._tools.clock.now()))
            uow.commit()
