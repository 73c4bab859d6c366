"""Running migrations: claim a job (one named, or the oldest waiting or abandoned one) under a
lease, find its backends, and run it as a `MigrationRun`."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from core.domain.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from core.domain.jobs import Job
from core.domain.migration import ACTIVE_STATES, MIGRATION
from core.migration.progress import JobProgress
from core.migration.run import MigrationRun
from core.migration.shared import MigrationTools
from ports.storage import StorageBackend


class MigrationRunner:
    def __init__(self, tools: MigrationTools) -> None:
        self._tools = tools

    def run(
        self,
        job_id: UUID,
        runner: str,
        *,
        take_over: bool = False,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Run (or resume) a migration to its end; the finished job. `Conflict` if another
        process holds it (unless `take_over`: its holder is known to be gone)."""
        with self._tools.uow_factory() as uow:
            job = uow.jobs.claim(
                job_id, MIGRATION, ACTIVE_STATES, self._tools.lease(runner), take_over=take_over
            )
            if job is None:
                found = uow.jobs.get(job_id)
                if found is None or found.kind != MIGRATION:
                    raise NotFound(f"no migration {job_id}")
                if found.state not in ACTIVE_STATES:
                    return found
                until = found.lease_until.isoformat() if found.lease_until else ""
                raise Conflict(
                    f"migration {job_id} is being run by {found.lease_owner} (lease until "
                    f"{until}); if that process is gone, take it over",
                    details={"lease_owner": found.lease_owner, "lease_until": until},
                )
            uow.commit()
        return self._run(job, runner, on_progress)

    def run_due(self, runner: str) -> Job | None:
        """The worker's part: claim the oldest migration that is waiting or whose runner died,
        and run it; None when there is none."""
        with self._tools.uow_factory() as uow:
            job = uow.jobs.claim(None, MIGRATION, ACTIVE_STATES, self._tools.lease(runner))
            uow.commit()
        return None if job is None else self._run(job, runner, None)

    def _run(self, job: Job, runner: str, on_progress: Callable[[Job], None] | None) -> Job:
        progress = JobProgress(self._tools, job.id, runner)
        source, target = self._backends_of(job, progress)
        run = MigrationRun(self._tools, job, progress, source, target)
        return run.execute(on_progress)

    def _backends_of(
        self, job: Job, progress: JobProgress
    ) -> tuple[StorageBackend, StorageBackend]:
        """The job's source and target. A runner configured without one of them does not hold
        the job: it releases it at once, the reason recorded (`last_error`), for a runner that
        has both, and raises `ConfigurationError` saying so."""
        found, missing = [], []
        for name in (job.params["from"], job.params["to"]):
            try:
                found.append(self._tools.backends.get(name))
            except InvalidInput:
                missing.append(f"'{name}'")
        if not missing:
            return found[0], found[1]
        reason = (
            f"{progress.runner} has no backend {' nor '.join(missing)} configured: the migration "
            "is left to a worker (or `secretctl migrate --resume`) configured with both"
        )
        progress.release(reason)
        raise ConfigurationError(reason, details={"job": str(job.id)})
