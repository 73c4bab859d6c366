"""Migration between storage backends: move the values of selected secrets from one backend
instance to another, as a resumable job.

Starting a migration (an admin of the selected scope, or of global) records a job and one item
per secret (version 0, the secret itself) and per version to move: every version still holding
a value with `all_versions`, else the current and pending ones (older versions then stay where
they are, readable there: their rows keep pointing at the source). Running it first reads every
value to move and refuses the whole job, before anything moves, if one does not fit the target
(size limit, or a name the service's name rules no longer accept). Then, secret by secret:

1. each version is put to the target (the item is marked `writing` first), read back and
   compared with the version's keyed checksum, and its target locator recorded (`copied`);
2. one transaction points every copied version at its copy and the secret at the target, with
   its audit event, only if the secret's revision has not moved since step 1 began — a version
   written (or disabled, destroyed…) meanwhile makes it start the secret again, copying what is
   new, so no write is lost;
3. only then, and only if asked, the source copies are destroyed.

Resuming (after a crash, a killed process, or a backend outage) takes the job again once its
lease has run out: a `copied` item is read back and verified rather than copied again; a
switched secret is never copied again; an item left `writing` (the process died between the put
and recording its locator) may have left a copy nobody points at, so if no version of that
secret lives on the target yet, the target's storage for the secret is purged and its copies
made afresh; if it holds some (or an earlier migration away from it kept its copies there),
the item is put again and the possible stray copy is listed in the report (`stray_copies`).

The job acts for the admin who started it (its audit events name them); no value ever leaves
the service or reaches a report, an event or an error.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from uuid import UUID

from core.access import allowed, authorize, caller_bindings
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import (
    BackendAuthFailed,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidInput,
    LeaseLost,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValueIntegrityError,
)
from core.domain.jobs import ItemState, Job, JobItem, JobState
from core.domain.secrets import Secret, SecretFilter, SecretVersion, VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, VersionKey
from core.domain.work import Lease
from core.policy import SecretPolicy, ValueChecksum, check_scope
from core.services import ValueReader, audit_place, discard_value
from ports.persistence import UnitOfWork
from ports.security import Clock
from ports.storage import StorageBackend

log = logging.getLogger(__name__)

MIGRATION = "migration"
SECRET_ITEM = 0  # the item that stands for the secret itself (its switch)
MAX_SWITCH_ATTEMPTS = 5
LIST_LIMIT = 100
# Errors that stop the whole run (the job stays resumable) rather than fail one secret.
STOPPING = (BackendUnavailable, BackendAuthFailed, LeaseLost)


ACTIVE_STATES = (JobState.PENDING.value, JobState.RUNNING.value)


@dataclass(frozen=True)
class MigrationRequest:
    """Move what `source` holds of the secrets under `scope` (and below), optionally only one
    `environment` and names starting with `prefix`, to `target`."""

    source: str
    target: str
    scope: ScopeRef = field(default_factory=ScopeRef.global_scope)
    environment: str | None = None
    prefix: str | None = None
    all_versions: bool = False
    delete_source: bool = False


@dataclass(frozen=True)
class Misfit:
    """A secret (version) the target cannot take, and why — never the value."""

    secret_id: UUID
    name: str
    version: int | None
    reason: str


@dataclass(frozen=True)
class PlannedSecret:
    secret_id: UUID
    name: str
    scope: str
    environment: str | None
    versions: tuple[int, ...]


@dataclass(frozen=True)
class MigrationPlan:
    """A dry run: what a migration would move, and what does not fit the target."""

    request: MigrationRequest
    secrets: tuple[PlannedSecret, ...]
    misfits: tuple[Misfit, ...]

    @property
    def versions(self) -> int:
        return sum(len(planned.versions) for planned in self.secrets)


def versions_to_move(
    secret: Secret, versions: list[SecretVersion], source: str, all_versions: bool
) -> list[SecretVersion]:
    """The versions holding a value on `source` that the migration moves."""
    holding = [
        record
        for record in versions
        if record.backend == source and record.state is not VersionState.DESTROYED
    ]
    if all_versions:
        return holding
    staged = (secret.current_version, secret.pending_version)
    return [record for record in holding if record.version in staged]


def finished_states(delete_source: bool) -> tuple[str, ...]:
    done = (ItemState.SOURCE_REMOVED, ItemState.SKIPPED, ItemState.FAILED)
    return tuple(done) + (() if delete_source else (ItemState.SWITCHED,))


@dataclass
class _Run:
    """One run of a job by one process: the backends, who it acts for, its runner id."""

    job_id: UUID
    runner: str
    actor: Principal
    source: StorageBackend
    target: StorageBackend
    all_versions: bool
    delete_source: bool
    details: dict[str, Any]


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
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._checksum = checksum
        self._policy = policy
        self._audit = audit
        self._lease_length = lease
        self._reader = ValueReader(backends, clock, checksum)

    # -- starting, dry runs, reading -----------------------------------------------------------

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
                for misfit in self._misfits(secret_id, source.name, target, request.all_versions)
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
                params=_params(request, scope_path),
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
                job.counters["versions"] = sum(i.version != SECRET_ITEM for i in items)
                uow.jobs.add(job, items)
                attempt.succeed(
                    uow,
                    resource=f"job:{job.id}",
                    details={**_params(request, scope_path), "secrets": job.total},
                )
                uow.commit()
            return job

    def get(self, actor: Principal, job_id: UUID) -> Job:
        with self._audit.attempt(actor, AuditAction.MIGRATION_READ, f"job:{job_id}") as attempt:
            with self._uow_factory() as uow:
                job = uow.jobs.get(job_id)
                if job is None or job.kind != MIGRATION:
                    raise NotFound(f"no migration {job_id}")
                attempt.learn(scope=_scope_text(job))
                try:
                    authorize(uow, actor, Action.ADMIN, _job_target(job), self._clock.now())
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
                    if allowed(actor, Action.ADMIN, _job_target(job), bindings, now)
                ]
                attempt.succeed(uow, details={"total": len(jobs)})
                uow.commit()
            return jobs

    def _busy(self, uow: UnitOfWork, actor: Principal, active: Job) -> Conflict:
        """One migration at a time: which one, only to a caller who administers its scope (to
        any other, another tenant's job is none of its business, its id above all)."""
        now = self._clock.now()
        if allowed(actor, Action.ADMIN, _job_target(active), caller_bindings(uow, actor, now), now):
            return Conflict(
                f"migration {active.id} is not finished yet: run it to the end first",
                details={"job": str(active.id)},
            )
        return Conflict("another migration is not finished yet; try again once it is")

    def _check_request(self, request: MigrationRequest) -> tuple[StorageBackend, StorageBackend]:
        check_scope(request.scope)
        self._policy.check_metadata(environment=request.environment)
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
            return self._backends.get(name)
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
            *(_item_for(job.id, record, now) for record in moving),
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

    def _misfits(
        self, secret_id: UUID, source: str, target: StorageBackend, all_versions: bool
    ) -> list[Misfit]:
        """Read every value to move and check it against the target's rules."""
        with self._uow_factory() as uow:
            secret = uow.secrets.get(secret_id)
            if secret is None:
                return []
            versions = uow.secrets.list_versions(secret_id)
        found = []
        try:
            self._policy.check_name(secret.name)
        except InvalidInput as error:
            found.append(Misfit(secret_id, secret.name, None, error.message))
        for record in versions_to_move(secret, versions, source, all_versions):
            try:
                value = self._reader.fetch(secret, record)
                self._policy.check_value(value, target.capabilities.max_value_bytes, target.name)
            except (InvalidInput, NotFound, ValueIntegrityError) as error:
                found.append(Misfit(secret_id, secret.name, record.version, error.message))
        return found

    # -- running -------------------------------------------------------------------------------

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
        with self._uow_factory() as uow:
            job = uow.jobs.claim(
                job_id, MIGRATION, ACTIVE_STATES, self._lease(runner), take_over=take_over
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
        with self._uow_factory() as uow:
            job = uow.jobs.claim(None, MIGRATION, ACTIVE_STATES, self._lease(runner))
            uow.commit()
        return None if job is None else self._run(job, runner, None)

    def _run(self, job: Job, runner: str, on_progress: Callable[[Job], None] | None) -> Job:
        source, target = self._backends_of(job, runner)
        run = _Run(
            job_id=job.id,
            runner=runner,
            actor=Principal(job.created_by, job.created_by_type),
            source=source,
            target=target,
            all_versions=bool(job.params["all_versions"]),
            delete_source=bool(job.params["delete_source"]),
            details={"job": str(job.id), "from": job.params["from"], "to": job.params["to"]},
        )
        try:
            if job.state == JobState.PENDING and not self._check_fit(run, job):
                return self._finish(run)
            if on_progress is not None:
                on_progress(self._job(run))
            finished = finished_states(run.delete_source)
            with self._uow_factory() as uow:
                secret_ids = uow.jobs.pending_secrets(run.job_id, finished)
            for secret_id in secret_ids:
                self._migrate_or_fail(run, secret_id)
                if on_progress is not None:
                    on_progress(self._job(run))
            return self._finish(run)
        except STOPPING as error:
            self._stop(run, error)
            raise

    def _backends_of(self, job: Job, runner: str) -> tuple[StorageBackend, StorageBackend]:
        """The job's source and target. A runner configured without one of them does not hold
        the job: it releases it at once, the reason recorded (`last_error`), for a runner that
        has both, and raises `ConfigurationError` saying so."""
        found, missing = [], []
        for name in (job.params["from"], job.params["to"]):
            try:
                found.append(self._backends.get(name))
            except InvalidInput:
                missing.append(f"'{name}'")
        if not missing:
            return found[0], found[1]
        reason = (
            f"{runner} has no backend {' nor '.join(missing)} configured: the migration is left "
            "to a worker (or `secretctl migrate --resume`) configured with both"
        )
        self._release(job.id, runner, reason)
        raise ConfigurationError(reason, details={"job": str(job.id)})

    def _release(self, job_id: UUID, runner: str, reason: str) -> None:
        """Give the job up, if this runner still holds it, recording why."""
        with self._uow_factory() as uow:
            if not uow.jobs.hold(job_id, self._lease(runner)):
                return
            job = uow.jobs.get(job_id)
            assert job is not None
            job.last_error = reason[:512]
            job.lease_owner = job.lease_until = None
            job.updated_at = self._clock.now()
            uow.jobs.update(job)
            uow.commit()

    def _check_fit(self, run: _Run, job: Job) -> bool:
        """Before anything moves: every value to move fits the target, or the job is refused."""
        with self._uow_factory() as uow:
            secret_ids = sorted({item.secret_id for item in uow.jobs.items(run.job_id)})
        misfits = [
            misfit
            for secret_id in secret_ids
            for misfit in self._misfits(secret_id, run.source.name, run.target, run.all_versions)
        ]

        def checked(job: Job) -> None:
            job.started_at = job.started_at or self._clock.now()
            if misfits:
                job.state = JobState.REFUSED
                job.report["misfits"] = [_misfit_report(misfit) for misfit in misfits]
            else:
                job.state = JobState.RUNNING

        with self._uow_factory() as uow:
            self._progress(uow, run, checked)
            uow.commit()
        return not misfits

    def _migrate_or_fail(self, run: _Run, secret_id: UUID) -> None:
        try:
            self._migrate_secret(run, secret_id)
        except STOPPING:
            raise
        except ServiceError as error:
            self._fail_secret(run, secret_id, error.message)

    def _migrate_secret(self, run: _Run, secret_id: UUID) -> None:
        with self._uow_factory() as uow:
            items = uow.jobs.items(run.job_id, secret_id)
        marker = next(item for item in items if item.version == SECRET_ITEM)
        if marker.state == ItemState.PENDING:
            with self._audit.attempt(
                run.actor, AuditAction.SECRET_MIGRATE, f"secret:{secret_id}", details=run.details
            ) as attempt:
                if not self._copy_and_switch(run, secret_id, attempt):
                    return
        if run.delete_source:
            self._remove_sources(run, secret_id)

    def _copy_and_switch(self, run: _Run, secret_id: UUID, attempt: Attempt) -> bool:
        """Copy what is left to copy, then switch; again from the start while the secret keeps
        changing under it. Whether the secret was switched (not purged meanwhile)."""
        verified: set[int] = set()
        for _ in range(MAX_SWITCH_ATTEMPTS):
            with self._uow_factory() as uow:
                secret = uow.secrets.get(secret_id)
                versions = {v.version: v for v in uow.secrets.list_versions(secret_id)}
            if secret is None:
                self._skip_secret(run, secret_id, attempt)
                return False
            attempt.learn(**audit_place(secret))
            items = self._reconcile(run, secret, versions)
            try:
                for item in items:
                    if item.version != SECRET_ITEM and item.state != ItemState.SKIPPED:
                        if item.version not in verified:
                            self._copy(run, secret, versions[item.version], item)
                            verified.add(item.version)
            except (NotFound, ValueIntegrityError):
                if self._changed(secret):
                    continue  # a version was destroyed meanwhile, say: plan the secret again
                raise
            if self._switch(run, secret, attempt):
                return True
        raise Conflict("the secret kept changing while it was being migrated; run the job again")

    def _changed(self, secret: Secret) -> bool:
        with self._uow_factory() as uow:
            now = uow.secrets.get(secret.id)
        return now is None or now.revision != secret.revision

    def _reconcile(
        self, run: _Run, secret: Secret, versions: dict[int, SecretVersion]
    ) -> list[JobItem]:
        """Bring the secret's items up to date with its versions: new ones to move are added,
        destroyed ones skipped; an item a crash left `writing` is made safe to put again."""
        moving = versions_to_move(
            secret, list(versions.values()), run.source.name, run.all_versions
        )
        now = self._clock.now()
        with self._uow_factory() as uow:
            items = {item.version: item for item in uow.jobs.items(run.job_id, secret.id)}
        new = [
            _item_for(run.job_id, record, now) for record in moving if record.version not in items
        ]
        changed: list[JobItem] = []
        strays: list[dict[str, Any]] = []
        for item in items.values():
            record = versions.get(item.version)
            gone = record is None or record.state is VersionState.DESTROYED
            if item.version != SECRET_ITEM and item.state != ItemState.SKIPPED and gone:
                self._discard_copy(run, item)
                changed.append(replace(item, state=ItemState.SKIPPED, target_locator=None))
        crashed = [item for item in items.values() if item.state == ItemState.WRITING]
        if crashed:
            if self._target_holds(run, secret.id, versions):
                for item in crashed:
                    strays.append({"secret_id": str(secret.id), "version": item.version})
                    changed.append(replace(item, state=ItemState.PENDING))
            else:
                # Nothing of this secret lives on the target: whatever is there is a stray copy.
                run.target.purge(secret.id)
                for item in items.values():
                    if item.state in (ItemState.WRITING, ItemState.COPIED):
                        changed.append(replace(item, state=ItemState.PENDING, target_locator=None))
        if new or changed:
            with self._uow_factory() as uow:

                def noted(job: Job) -> None:
                    job.counters["versions"] = job.counters.get("versions", 0) + len(new)
                    job.report.setdefault("stray_copies", []).extend(strays)

                self._progress(uow, run, noted)
                uow.jobs.add_items(new)
                for item in changed:
                    uow.jobs.update_item(replace(item, updated_at=now))
                uow.commit()
        with self._uow_factory() as uow:
            return uow.jobs.items(run.job_id, secret.id)

    def _target_holds(self, run: _Run, secret_id: UUID, versions: dict[int, SecretVersion]) -> bool:
        """Whether the target holds values of the secret that are not strays of this job: its
        versions' own, or source copies an earlier migration away from it kept."""
        if any(record.backend == run.target.name for record in versions.values()):
            return True
        with self._uow_factory() as uow:
            return uow.jobs.kept_copies(secret_id, run.target.name, ItemState.SWITCHED)

    def _copy(self, run: _Run, secret: Secret, record: SecretVersion, item: JobItem) -> None:
        """One version in the target, read back and checked against its keyed checksum."""
        key = VersionKey(secret.id, record.version)
        if item.state == ItemState.COPIED and item.target_locator is not None:
            if self._verified(run.target, key, item.target_locator, record.checksum):
                return
            self._discard_copy(run, item)
        self._save_item(run, replace(item, state=ItemState.WRITING, target_locator=None))
        value = self._reader.fetch(secret, record)
        self._policy.check_value(value, run.target.capabilities.max_value_bytes, run.target.name)
        locator = run.target.put(key, value)
        copy = record.relocated(run.target.name, locator)
        try:
            if not self._verified(run.target, key, locator, record.checksum):
                raise ValueIntegrityError(
                    f"the copy of version {record.version} in backend '{run.target.name}' "
                    "does not read back as written"
                )
            self._save_item(run, replace(item, state=ItemState.COPIED, target_locator=locator))
        except BaseException:
            discard_value(run.target, copy)
            raise

    def _verified(
        self, backend: StorageBackend, key: VersionKey, locator: str, checksum: str
    ) -> bool:
        try:
            return self._checksum.matches(backend.get(key, locator), checksum)
        except (NotFound, ValueIntegrityError):
            return False

    def _switch(self, run: _Run, secret: Secret, attempt: Attempt) -> bool:
        """Point the copied versions and the secret at the target, in one transaction, if the
        secret is still at the revision its copies were made from. Whether it was."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            current = uow.secrets.get(secret.id)
            if current is None or current.revision != secret.revision:
                return False
            items = uow.jobs.items(run.job_id, secret.id)
            copied = [item for item in items if item.state == ItemState.COPIED]
            for item in copied:
                record = uow.secrets.get_version(secret.id, item.version)
                assert item.target_locator is not None and record is not None
                uow.secrets.relocate_version(record, run.target.name, item.target_locator)
            backend = run.target.name if current.backend == run.source.name else current.backend
            switched = current.changed(run.actor, now, backend=backend)
            try:
                uow.secrets.update(switched, expected_revision=current.revision)
            except PreconditionFailed:
                return False

            def counted(job: Job) -> None:
                job.done += 1
                job.counters["versions_copied"] = job.counters.get("versions_copied", 0) + len(
                    copied
                )

            self._progress(uow, run, counted)
            for item in items:
                if item.state == ItemState.COPIED or item.version == SECRET_ITEM:
                    uow.jobs.update_item(replace(item, state=ItemState.SWITCHED, updated_at=now))
            attempt.succeed(
                uow,
                details={
                    **run.details,
                    "versions": [item.version for item in copied],
                    "revision": switched.revision,
                },
            )
            uow.commit()
        return True

    def _remove_sources(self, run: _Run, secret_id: UUID) -> None:
        """Destroy the source copies of a switched secret (idempotent: destroying what is gone
        is no error), then record it."""
        with self._uow_factory() as uow:
            items = [
                item
                for item in uow.jobs.items(run.job_id, secret_id)
                if item.state == ItemState.SWITCHED
            ]
        with self._audit.attempt(
            run.actor,
            AuditAction.SECRET_MIGRATE_REMOVE_SOURCE,
            f"secret:{secret_id}",
            details={**run.details, "versions": [i.version for i in items if i.version]},
        ) as attempt:
            for item in items:
                if item.version != SECRET_ITEM:
                    key = VersionKey(secret_id, item.version)
                    run.source.destroy(key, item.source_locator)
            now = self._clock.now()
            with self._uow_factory() as uow:

                def counted(job: Job) -> None:
                    removed = sum(item.version != SECRET_ITEM for item in items)
                    job.counters["sources_removed"] = (
                        job.counters.get("sources_removed", 0) + removed
                    )

                self._progress(uow, run, counted)
                for item in items:
                    uow.jobs.update_item(
                        replace(item, state=ItemState.SOURCE_REMOVED, updated_at=now)
                    )
                attempt.succeed(uow)
                uow.commit()

    def _skip_secret(self, run: _Run, secret_id: UUID, attempt: Attempt) -> None:
        """The secret was purged while the job ran: nothing left to move."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            items = uow.jobs.items(run.job_id, secret_id)
        for item in items:
            self._discard_copy(run, item)
        with self._uow_factory() as uow:

            def counted(job: Job) -> None:
                job.done += 1

            self._progress(uow, run, counted)
            for item in items:
                uow.jobs.update_item(replace(item, state=ItemState.SKIPPED, updated_at=now))
            attempt.succeed(uow, details={**run.details, "skipped": "the secret was purged"})
            uow.commit()

    def _fail_secret(self, run: _Run, secret_id: UUID, reason: str) -> None:
        """The secret stays on the source; copies made for it are removed; the report says why.
        (One that failed after its switch — its source copies could not be removed — stays on
        the target, and counts as failed all the same.)"""
        now = self._clock.now()
        with self._uow_factory() as uow:
            items = uow.jobs.items(run.job_id, secret_id)
            secret = uow.secrets.get(secret_id)
        switched = any(i.version == SECRET_ITEM and i.state == ItemState.SWITCHED for i in items)
        if switched:
            reason = f"moved to '{run.target.name}', but its source copies remain: {reason}"
        for item in items:
            if item.state == ItemState.COPIED:
                self._discard_copy(run, item)
        unfinished = [item for item in items if item.state not in finished_states(True)]
        with self._uow_factory() as uow:

            def counted(job: Job) -> None:
                job.failed += 1
                job.done -= switched
                job.report.setdefault("failures", []).append(
                    {
                        "secret_id": str(secret_id),
                        "name": secret.name if secret else None,
                        "reason": reason,
                    }
                )

            self._progress(uow, run, counted)
            for item in unfinished:
                failed = replace(item, state=ItemState.FAILED, error=reason[:512], updated_at=now)
                if not switched:
                    failed.target_locator = None
                uow.jobs.update_item(failed)
            uow.commit()

    def _discard_copy(self, run: _Run, item: JobItem) -> None:
        if item.target_locator is not None and item.version != SECRET_ITEM:
            stray = SecretVersion(
                item.secret_id,
                item.version,
                run.target.name,
                item.target_locator,
                "",
                item.updated_at,
                "",
            )
            discard_value(run.target, stray)

    def _finish(self, run: _Run) -> Job:
        with self._audit.attempt(
            run.actor, AuditAction.MIGRATION_FINISH, f"job:{run.job_id}", details=run.details
        ) as attempt:
            with self._uow_factory() as uow:

                def finished(job: Job) -> None:
                    if job.state == JobState.RUNNING:
                        job.state = JobState.FAILED if job.failed else JobState.SUCCEEDED
                    job.finished_at = self._clock.now()
                    job.last_error = None
                    job.lease_owner = job.lease_until = None

                job = self._progress(uow, run, finished)
                attempt.learn(scope=_scope_text(job), scope_path=job.params["scope_path"])
                attempt.succeed(
                    uow,
                    details={
                        **run.details,
                        "state": job.state,
                        "done": job.done,
                        "failed": job.failed,
                        **job.counters,
                    },
                )
                uow.commit()
            return job

    def _stop(self, run: _Run, error: ServiceError) -> None:
        """A backend is down (or the lease was lost): record why and let the job be resumed."""
        try:
            with self._uow_factory() as uow:

                def stopped(job: Job) -> None:
                    job.last_error = error.message[:512]
                    job.lease_owner = job.lease_until = None

                self._progress(uow, run, stopped)
                uow.commit()
        except LeaseLost:
            pass  # another process runs it now

    # -- the job row ---------------------------------------------------------------------------

    def _progress(self, uow: UnitOfWork, run: _Run, change: Callable[[Job], None]) -> Job:
        """Change the job in this transaction, if this process still holds it."""
        if not uow.jobs.hold(run.job_id, self._lease(run.runner)):
            raise LeaseLost(f"migration {run.job_id} was taken over by another process")
        job = uow.jobs.get(run.job_id)
        assert job is not None
        change(job)
        job.updated_at = self._clock.now()
        uow.jobs.update(job)
        return job

    def _save_item(self, run: _Run, item: JobItem) -> None:
        with self._uow_factory() as uow:
            self._progress(uow, run, lambda job: None)
            uow.jobs.update_item(replace(item, updated_at=self._clock.now()))
            uow.commit()

    def _job(self, run: _Run) -> Job:
        with self._uow_factory() as uow:
            job = uow.jobs.get(run.job_id)
        assert job is not None
        return job

    def _lease(self, runner: str) -> Lease:
        now = self._clock.now()
        return Lease(worker=runner, now=now, until=now + self._lease_length)


def _item_for(job_id: UUID, record: SecretVersion, now: Any) -> JobItem:
    return JobItem(
        job_id,
        record.secret_id,
        record.version,
        ItemState.PENDING,
        record.backend,
        record.locator,
        now,
    )


def _params(request: MigrationRequest, scope_path: str) -> dict[str, Any]:
    return {
        "from": request.source,
        "to": request.target,
        "scope": {"type": request.scope.type.value, "id": request.scope.id},
        "scope_path": scope_path,
        "environment": request.environment,
        "prefix": request.prefix,
        "all_versions": request.all_versions,
        "delete_source": request.delete_source,
    }


def _job_scope(job: Job) -> ScopeRef:
    scope = job.params["scope"]
    return ScopeRef(ScopeType(scope["type"]), scope["id"])


def _scope_text(job: Job) -> str:
    return str(_job_scope(job))


def _job_target(job: Job) -> Target:
    return Target(_job_scope(job), job.params["scope_path"])


def _misfit_report(misfit: Misfit) -> dict[str, Any]:
    return {
        "secret_id": str(misfit.secret_id),
        "name": misfit.name,
        "version": misfit.version,
        "reason": misfit.reason,
    }
