"""Planning, starting and reading migrations: a dry run, recording a job with its items (after
checking the request and the caller), one job, the newest jobs the caller may see."""

from __future__ import annotations

import uuid
from uuid import UUID

from core.access import allowed, authorize, caller_bindings
from core.audit import Attempt
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from core.domain.jobs import ItemState, Job, JobItem, JobState
from core.domain.migration import (
    MIGRATION,
    SECRET_ITEM,
    MigrationPlan,
    MigrationRequest,
    PlannedSecret,
    versions_to_move,
)
from core.domain.secrets import SecretFilter
from core.domain.values import Principal
from core.migration.shared import MigrationTools, item_for, job_target, scope_text
from core.policy import check_scope
from ports.storage import StorageBackend
from ports.unit_of_work import UnitOfWork

LIST_LIMIT = 100


class MigrationPlanner:
    def __init__(self, tools: MigrationTools) -> None:
        self._tools = tools
        self._uow_factory = tools.uow_factory
        self._clock = tools.clock
        self._audit = tools.audit

    def plan(self, actor: Principal, request: MigrationRequest) -> MigrationPlan:
        """A dry run: what would move, and every value the target cannot take. Moves nothing."""
        with self._audit.attempt(
            actor, AuditAction.MIGRATION_PLAN, f"scope:{request.scope}", scope=str(request.scope)
        ) as attempt:
            source, target = self._check_request(request)
            planned, _ = self._select(actor, request, attempt)
            misfits = [
                misfit
                for secret_id in planned
                for misfit in self._tools.misfits(
                    secret_id, source.name, target, request.all_versions
                )
            ]
            plan = MigrationPlan(
                request,
                tuple(self._planned(secret_id, source.name, request) for secret_id in planned),
                tuple(misfits),
            )
            with self._uow_factory() as uow:
                attempt.succeed(
                    uow,
                    details={
                        **attempt.event.details,
                        "secrets": len(plan.secrets),
                        "misfits": len(misfits),
                    },
                )
                uow.commit()
            return plan

    def start(self, actor: Principal, request: MigrationRequest) -> Job:
        """Record a migration job (the worker, or `secretctl migrate`, runs it)."""
        with self._audit.attempt(
            actor, AuditAction.MIGRATION_START, f"scope:{request.scope}", scope=str(request.scope)
        ) as attempt:
            source, target = self._check_request(request)
            secret_ids, scope_path = self._select(actor, request, attempt)
            with self._uow_factory() as uow:
                active = uow.jobs.unfinished(MIGRATION)
                if active:
                    raise self._busy(uow, actor, active[0])
            for backend in (source, target):
                health = backend.health()
                if not health.ok:
                    raise BackendUnavailable(backend.name, health.detail)
            now = self._clock.now()
            job = Job(
                id=uuid.uuid4(),
                kind=MIGRATION,
                state=JobState.PENDING,
                params=request.params(scope_path),
                created_by=actor.id,
                created_by_type=actor.kind,
                created_at=now,
                updated_at=now,
                total=len(secret_ids),
                counters={"versions": 0, "versions_copied": 0, "sources_removed": 0},
                report={"failures": [], "misfits": [], "stray_copies": []},
            )
            with self._uow_factory() as uow:
                items = [
                    item
                    for secret_id in secret_ids
                    for item in self._items_of(uow, job, secret_id, source.name, request)
                ]
                job = job.counted("versions", sum(i.version != SECRET_ITEM for i in items))
                uow.jobs.add(job, items)
                attempt.succeed(
                    uow,
                    resource=f"job:{job.id}",
                    details={**request.params(scope_path), "secrets": job.total},
                )
                uow.commit()
            return job

    def get(self, actor: Principal, job_id: UUID) -> Job:
        with self._audit.attempt(actor, AuditAction.MIGRATION_READ, f"job:{job_id}") as attempt:
            with self._uow_factory() as uow:
                job = uow.jobs.get(job_id)
                if job is None or job.kind != MIGRATION:
                    raise NotFound(f"no migration {job_id}")
                attempt.learn(scope=scope_text(job))
                try:
                    authorize(uow, actor, Action.ADMIN, job_target(job), self._clock.now())
                except NotFound:
                    raise NotFound(f"no migration {job_id}") from None
                attempt.succeed(uow)
                uow.commit()
            return job

    def list_jobs(self, actor: Principal) -> list[Job]:
        """The newest migrations of the scopes the caller administers."""
        with self._audit.attempt(actor, AuditAction.MIGRATION_LIST, "jobs") as attempt:
            now = self._clock.now()
            with self._uow_factory() as uow:
                bindings = caller_bindings(uow, actor, now)
                jobs = [
                    job
                    for job in uow.jobs.search(MIGRATION, LIST_LIMIT)
                    if allowed(actor, Action.ADMIN, job_target(job), bindings, now)
                ]
                attempt.succeed(uow, details={"total": len(jobs)})
                uow.commit()
            return jobs

    def _busy(self, uow: UnitOfWork, actor: Principal, active: Job) -> Conflict:
        """One migration at a time: which one, only to a caller who administers its scope (to
        any other, another tenant's job is none of its business, its id above all)."""
        now = self._clock.now()
        if allowed(actor, Action.ADMIN, job_target(active), caller_bindings(uow, actor, now), now):
            return Conflict(
                f"migration {active.id} is not finished yet: run it to the end first",
                details={"job": str(active.id)},
            )
        return Conflict("another migration is not finished yet; try again once it is")

    def _check_request(self, request: MigrationRequest) -> tuple[StorageBackend, StorageBackend]:
        check_scope(request.scope)
        self._tools.policy.check_metadata(environment=request.environment)
        if request.source == request.target:
            raise InvalidInput(
                "the source and the target are the same backend", details={"field": "to"}
            )
        return (
            self._backend(request.source, "from"),
            self._backend(request.target, "to"),
        )

    def _backend(self, name: str, field_name: str) -> StorageBackend:
        try:
            return self._tools.backends.get(name)
        except InvalidInput as error:
            raise InvalidInput(error.message, details={"field": field_name}) from None

    def _select(
        self, actor: Principal, request: MigrationRequest, attempt: Attempt
    ) -> tuple[list[UUID], str]:
        """The selected secrets, once the caller is known to administer the scope."""
        with self._uow_factory() as uow:
            scope = uow.scopes.get(request.scope)
            if scope is None:
                raise NotFound(f"no scope {request.scope}")
            attempt.learn(scope_path=scope.path)
            authorize(uow, actor, Action.ADMIN, Target(scope.ref, scope.path), self._clock.now())
            criteria = SecretFilter(
                under_path=scope.path, environment=request.environment, prefix=request.prefix
            )
            found = uow.jobs.secrets_storing(request.source, criteria, not request.all_versions)
            return found, scope.path

    def _items_of(
        self,
        uow: UnitOfWork,
        job: Job,
        secret_id: UUID,
        source: str,
        request: MigrationRequest,
    ) -> list[JobItem]:
        secret = uow.secrets.get(secret_id)
        if secret is None:
            return []
        moving = versions_to_move(
            secret, uow.secrets.list_versions(secret_id), source, request.all_versions
        )
        now = self._clock.now()
        return [
            JobItem(job.id, secret_id, SECRET_ITEM, ItemState.PENDING, secret.backend, "", now),
            *(item_for(job.id, record, now) for record in moving),
        ]

    def _planned(self, secret_id: UUID, source: str, request: MigrationRequest) -> PlannedSecret:
        with self._uow_factory() as uow:
            secret = uow.secrets.get(secret_id)
            assert secret is not None  # selected a moment ago; a dry run may race, harmlessly
            versions = uow.secrets.list_versions(secret_id)
        moving = versions_to_move(secret, versions, source, request.all_versions)
        return PlannedSecret(
            secret_id,
            secret.name,
            str(secret.scope),
            secret.environment,
            tuple(record.version for record in moving),
        )
