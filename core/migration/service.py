"""One facade over the migration use cases, for the callers that use both: the HTTP API and the
CLI plan, start and read jobs (`MigrationPlanner`), the worker and `secretctl migrate` run them
(`MigrationRunner`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from core.audit import AuditTrail
from core.backends import BackendRegistry
from core.domain.jobs import Job
from core.domain.migration import MigrationPlan, MigrationRequest
from core.domain.values import Principal
from core.migration.planner import MigrationPlanner
from core.migration.runner import MigrationRunner
from core.migration.shared import MigrationTools
from core.policy import SecretPolicy, ValueChecksum
from ports.security import Clock
from ports.unit_of_work import UnitOfWork


class MigrationService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        backends: BackendRegistry,
        clock: Clock,
        checksum: ValueChecksum,
        policy: SecretPolicy,
        audit: AuditTrail,
        lease: timedelta = timedelta(minutes=10),
    ) -> None:
        tools = MigrationTools(uow_factory, backends, clock, checksum, policy, audit, lease)
        self.planner = MigrationPlanner(tools)
        self.runner = MigrationRunner(tools)

    def plan(self, actor: Principal, request: MigrationRequest) -> MigrationPlan:
        """A dry run: what would move, and every value the target cannot take. Moves nothing."""
        return self.planner.plan(actor, request)

    def start(self, actor: Principal, request: MigrationRequest) -> Job:
        """Record a migration job (the worker, or `secretctl migrate`, runs it)."""
        return self.planner.start(actor, request)

    def get(self, actor: Principal, job_id: UUID) -> Job:
        """One migration, to an admin of its scope."""
        return self.planner.get(actor, job_id)

    def list_jobs(self, actor: Principal) -> list[Job]:
        """The newest migrations of the scopes the caller administers."""
        return self.planner.list_jobs(actor)

    def run(
        self,
        job_id: UUID,
        runner: str,
        *,
        take_over: bool = False,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Run (or resume) a migration to its end; the finished job."""
        return self.runner.run(job_id, runner, take_over=take_over, on_progress=on_progress)

    def run_due(self, runner: str) -> Job | None:
        """Run the oldest migration waiting (or whose runner died); None when there is none."""
        return self.runner.run_due(runner)
