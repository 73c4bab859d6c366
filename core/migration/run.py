"""One run of a migration job by one process: check that every value fits the target, then
secret by secret copy, verify, switch and (if asked) remove the sources; finish or stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from core.audit import Attempt
from core.domain.audit import AuditAction
from core.domain.errors import (
    BackendAuthFailed,
    BackendUnavailable,
    Conflict,
    LeaseLost,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValueIntegrityError,
)
from core.domain.jobs import ItemState, Job, JobItem, JobState
from core.domain.migration import SECRET_ITEM, finished_states, versions_to_move
from core.domain.secrets import Secret, SecretVersion, VersionState
from core.domain.values import Principal, VersionKey
from core.migration.progress import JobProgress
from core.migration.shared import MigrationTools, item_for, scope_text
from core.secret_access import audit_place
from core.stored_values import discard_value
from ports.storage import StorageBackend

MAX_SWITCH_ATTEMPTS = 5
# Errors that stop the whole run (the job stays resumable) rather than fail one secret.
STOPPING = (BackendUnavailable, BackendAuthFailed, LeaseLost)


class MigrationRun:
    """Job `job` run by `progress.runner` from `source` to `target`, for whoever started it."""

    def __init__(
        self,
        tools: MigrationTools,
        job: Job,
        progress: JobProgress,
        source: StorageBackend,
        target: StorageBackend,
    ) -> None:
        self._tools = tools
        self._uow_factory = tools.uow_factory
        self._clock = tools.clock
        self.job_id = job.id
        self._claimed_state = job.state
        self.progress = progress
        self.actor = Principal(job.created_by, job.created_by_type)
        self.source = source
        self.target = target
        self.all_versions = bool(job.params["all_versions"])
        self.delete_source = bool(job.params["delete_source"])
        self.details = {"job": str(job.id), "from": job.params["from"], "to": job.params["to"]}

    def execute(self, on_progress: Callable[[Job], None] | None) -> Job:
        """Run the job to its end; the finished job. A backend down (or the lease lost) stops
        the run, the job left to be resumed."""
        try:
            if self._claimed_state == JobState.PENDING and not self._check_fit():
                return self._finish()
            if on_progress is not None:
                on_progress(self.progress.current())
            finished = finished_states(self.delete_source)
            with self._uow_factory() as uow:
                secret_ids = uow.jobs.pending_secrets(self.job_id, finished)
            for secret_id in secret_ids:
                self._migrate_or_fail(secret_id)
                if on_progress is not None:
                    on_progress(self.progress.current())
            return self._finish()
        except STOPPING as error:
            self.progress.stop(error)
            raise

    def _check_fit(self) -> bool:
        """Before anything moves: every value to move fits the target, or the job is refused."""
        with self._uow_factory() as uow:
            secret_ids = sorted({item.secret_id for item in uow.jobs.items(self.job_id)})
        misfits = [
            misfit.report()
            for secret_id in secret_ids
            for misfit in self._tools.misfits(
                secret_id, self.source.name, self.target, self.all_versions
            )
        ]
        with self._uow_factory() as uow:
            self.progress.change(uow, lambda job: job.checked(self._clock.now(), misfits))
            uow.commit()
        return not misfits

    def _migrate_or_fail(self, secret_id: UUID) -> None:
        try:
            with self._uow_factory() as uow:
                items = uow.jobs.items(self.job_id, secret_id)
            marker = next(item for item in items if item.version == SECRET_ITEM)
            if marker.state == ItemState.PENDING:
                with self._tools.audit.attempt(
                    self.actor,
                    AuditAction.SECRET_MIGRATE,
                    f"secret:{secret_id}",
                    details=self.details,
                ) as attempt:
                    if not self._copy_and_switch(secret_id, attempt):
                        return
            if self.delete_source:
                self._remove_sources(secret_id)
        except STOPPING:
            raise
        except ServiceError as error:
            self._fail_secret(secret_id, error.message)

    def _copy_and_switch(self, secret_id: UUID, attempt: Attempt) -> bool:
        """Copy what is left to copy, then switch; again from the start while the secret keeps
        changing under it. Whether the secret was switched (not purged meanwhile)."""
        verified: set[int] = set()
        for _ in range(MAX_SWITCH_ATTEMPTS):
            with self._uow_factory() as uow:
                secret = uow.secrets.get(secret_id)
                versions = {v.version: v for v in uow.secrets.list_versions(secret_id)}
            if secret is None:
                self._skip_secret(secret_id, attempt)
                return False
            attempt.learn(**audit_place(secret))
            items = self._reconcile(secret, versions)
            try:
                for item in items:
                    if item.version != SECRET_ITEM and item.state != ItemState.SKIPPED:
                        if item.version not in verified:
                            self._copy(secret, versions[item.version], item)
                            verified.add(item.version)
            except (NotFound, ValueIntegrityError):
                if self._changed(secret):
                    continue  # a version was destroyed meanwhile, say: plan the secret again
                raise
            if self._switch(secret, attempt):
                return True
        raise Conflict("the secret kept changing while it was being migrated; run the job again")

    def _changed(self, secret: Secret) -> bool:
        with self._uow_factory() as uow:
            now = uow.secrets.get(secret.id)
        return now is None or now.revision != secret.revision

    def _reconcile(self, secret: Secret, versions: dict[int, SecretVersion]) -> list[JobItem]:
        """Bring the secret's items up to date with its versions: new ones to move are added,
        destroyed ones skipped; an item a crash left `writing` is made safe to put again."""
        moving = versions_to_move(
            secret, list(versions.values()), self.source.name, self.all_versions
        )
        now = self._clock.now()
        with self._uow_factory() as uow:
            items = {item.version: item for item in uow.jobs.items(self.job_id, secret.id)}
        new = [
            item_for(self.job_id, record, now) for record in moving if record.version not in items
        ]
        changed: list[JobItem] = []
        strays: list[dict[str, Any]] = []
        for item in items.values():
            record = versions.get(item.version)
            gone = record is None or record.state is VersionState.DESTROYED
            if item.version != SECRET_ITEM and item.state != ItemState.SKIPPED and gone:
                self._discard_copy(item)
                changed.append(item.without_copy(ItemState.SKIPPED, now))
        crashed = [item for item in items.values() if item.state == ItemState.WRITING]
        if crashed:
            if self._target_holds(secret.id, versions):
                for item in crashed:
                    strays.append({"secret_id": str(secret.id), "version": item.version})
                    changed.append(item.with_state(ItemState.PENDING, now))
            else:
                # Nothing of this secret lives on the target: whatever is there is a stray copy.
                self.target.purge(secret.id)
                for item in items.values():
                    if item.state in (ItemState.WRITING, ItemState.COPIED):
                        changed.append(item.without_copy(ItemState.PENDING, now))
        if new or changed:
            with self._uow_factory() as uow:
                self.progress.change(
                    uow,
                    lambda job: job.counted("versions", len(new)).reported("stray_copies", strays),
                )
                uow.jobs.add_items(new)
                for item in changed:
                    uow.jobs.update_item(item)
                uow.commit()
        with self._uow_factory() as uow:
            return uow.jobs.items(self.job_id, secret.id)

    def _target_holds(self, secret_id: UUID, versions: dict[int, SecretVersion]) -> bool:
        """Whether the target holds values of the secret that are not strays of this job: its
        versions' own, or source copies an earlier migration away from it kept."""
        if any(record.backend == self.target.name for record in versions.values()):
            return True
        with self._uow_factory() as uow:
            return uow.jobs.kept_copies(secret_id, self.target.name, ItemState.SWITCHED)

    def _copy(self, secret: Secret, record: SecretVersion, item: JobItem) -> None:
        """One version in the target, read back and checked against its keyed checksum."""
        key = VersionKey(secret.id, record.version)
        if item.state == ItemState.COPIED and item.target_locator is not None:
            if self._verified(key, item.target_locator, record.checksum):
                return
            self._discard_copy(item)
        self.progress.save_item(item.without_copy(ItemState.WRITING, self._clock.now()))
        value = self._tools.reader.fetch(secret, record)
        self._tools.policy.check_value(
            value, self.target.capabilities.max_value_bytes, self.target.name
        )
        locator = self.target.put(key, value)
        copy = record.relocated(self.target.name, locator)
        try:
            if not self._verified(key, locator, record.checksum):
                raise ValueIntegrityError(
                    f"the copy of version {record.version} in backend '{self.target.name}' "
                    "does not read back as written"
                )
            self.progress.save_item(item.copied_to(locator, self._clock.now()))
        except BaseException:
            discard_value(self.target, copy)
            raise

    def _verified(self, key: VersionKey, locator: str, checksum: str) -> bool:
        try:
            return self._tools.checksum.matches(self.target.get(key, locator), checksum)
        except (NotFound, ValueIntegrityError):
            return False

    def _switch(self, secret: Secret, attempt: Attempt) -> bool:
        """Point the copied versions and the secret at the target, in one transaction, if the
        secret is still at the revision its copies were made from. Whether it was."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            current = uow.secrets.get(secret.id)
            if current is None or current.revision != secret.revision:
                return False
            items = uow.jobs.items(self.job_id, secret.id)
            copied = [item for item in items if item.state == ItemState.COPIED]
            for item in copied:
                record = uow.secrets.get_version(secret.id, item.version)
                assert item.target_locator is not None and record is not None
                uow.secrets.relocate_version(record, self.target.name, item.target_locator)
            target = self.target.name
            backend = target if current.backend == self.source.name else current.backend
            switched = current.changed(self.actor, now, backend=backend)
            try:
                uow.secrets.update(switched, expected_revision=current.revision)
            except PreconditionFailed:
                return False
            self.progress.change(uow, lambda job: job.count_switched(len(copied)))
            for item in items:
                if item.state == ItemState.COPIED or item.version == SECRET_ITEM:
                    uow.jobs.update_item(item.with_state(ItemState.SWITCHED, now))
            attempt.succeed(
                uow,
                details={
                    **self.details,
                    "versions": [item.version for item in copied],
                    "revision": switched.revision,
                },
            )
            uow.commit()
        return True

    def _remove_sources(self, secret_id: UUID) -> None:
        """Destroy the source copies of a switched secret (idempotent: destroying what is gone
        is no error), then record it."""
        with self._uow_factory() as uow:
            items = [
                item
                for item in uow.jobs.items(self.job_id, secret_id)
                if item.state == ItemState.SWITCHED
            ]
        with self._tools.audit.attempt(
            self.actor,
            AuditAction.SECRET_MIGRATE_REMOVE_SOURCE,
            f"secret:{secret_id}",
            details={**self.details, "versions": [i.version for i in items if i.version]},
        ) as attempt:
            for item in items:
                if item.version != SECRET_ITEM:
                    key = VersionKey(secret_id, item.version)
                    self.source.destroy(key, item.source_locator)
            now = self._clock.now()
            removed = sum(item.version != SECRET_ITEM for item in items)
            with self._uow_factory() as uow:
                self.progress.change(uow, lambda job: job.counted("sources_removed", removed))
                for item in items:
                    uow.jobs.update_item(item.with_state(ItemState.SOURCE_REMOVED, now))
                attempt.succeed(uow)
                uow.commit()

    def _skip_secret(self, secret_id: UUID, attempt: Attempt) -> None:
        """The secret was purged while the job ran: nothing left to move."""
        now = self._clock.now()
        with self._uow_factory() as uow:
            items = uow.jobs.items(self.job_id, secret_id)
        for item in items:
            self._discard_copy(item)
        with self._uow_factory() as uow:
            self.progress.change(uow, Job.count_skipped)
            for item in items:
                uow.jobs.update_item(item.with_state(ItemState.SKIPPED, now))
            attempt.succeed(uow, details={**self.details, "skipped": "the secret was purged"})
            uow.commit()

    def _fail_secret(self, secret_id: UUID, reason: str) -> None:
        """The secret stays on the source; copies made for it are removed; the report says why.
        (One that failed after its switch — its source copies could not be removed — stays on
        the target, and counts as failed all the same.)"""
        now = self._clock.now()
        with self._uow_factory() as uow:
            items = uow.jobs.items(self.job_id, secret_id)
            secret = uow.secrets.get(secret_id)
        switched = any(i.version == SECRET_ITEM and i.state == ItemState.SWITCHED for i in items)
        if switched:
            reason = f"moved to '{self.target.name}', but its source copies remain: {reason}"
        for item in items:
            if item.state == ItemState.COPIED:
                self._discard_copy(item)
        unfinished = [item for item in items if item.state not in finished_states(True)]
        failure = {
            "secret_id": str(secret_id),
            "name": secret.name if secret else None,
            "reason": reason,
        }
        with self._uow_factory() as uow:
            self.progress.change(uow, lambda job: job.count_failed(failure, was_done=switched))
            for item in unfinished:
                uow.jobs.update_item(item.failed_with(reason, now, keep_copy=switched))
            uow.commit()

    def _discard_copy(self, item: JobItem) -> None:
        if item.target_locator is not None and item.version != SECRET_ITEM:
            stray = SecretVersion(
                item.secret_id,
                item.version,
                self.target.name,
                item.target_locator,
                "",
                item.updated_at,
                "",
            )
            discard_value(self.target, stray)

    def _finish(self) -> Job:
        with self._tools.audit.attempt(
            self.actor, AuditAction.MIGRATION_FINISH, f"job:{self.job_id}", details=self.details
        ) as attempt:
            with self._uow_factory() as uow:
                job = self.progress.change(uow, lambda job: job.finished(self._clock.now()))
                attempt.learn(scope=scope_text(job), scope_path=job.params["scope_path"])
                attempt.succeed(
                    uow,
                    details={
                        **self.details,
                        "state": job.state,
                        "done": job.done,
                        "failed": job.failed,
                        **job.counters,
                    },
                )
                uow.commit()
            return job
