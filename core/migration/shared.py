"""What the planner and the runner of migrations share: their collaborators, the fit check
(does every value to move suit the target?) and how a job names its scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from uuid import UUID

from core.audit import AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Target
from core.domain.errors import InvalidInput, NotFound, ValueIntegrityError
from core.domain.jobs import ItemState, Job, JobItem
from core.domain.migration import Misfit, versions_to_move
from core.domain.secrets import SecretVersion
from core.domain.values import ScopeRef, ScopeType
from core.domain.work import Lease
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ValueReader
from ports.security import Clock
from ports.storage import StorageBackend
from ports.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class MigrationTools:
    """The collaborators of every migration use case."""

    uow_factory: Callable[[], UnitOfWork]
    backends: BackendRegistry
    clock: Clock
    checksum: ValueChecksum
    policy: SecretPolicy
    audit: AuditTrail
    lease_length: timedelta = timedelta(minutes=10)

    @cached_property
    def reader(self) -> ValueReader:
        return ValueReader(self.backends, self.clock, self.checksum)

    def lease(self, runner: str) -> Lease:
        now = self.clock.now()
        return Lease(worker=runner, now=now, until=now + self.lease_length)

    def misfits(
        self, secret_id: UUID, source: str, target: StorageBackend, all_versions: bool
    ) -> list[Misfit]:
        """Read every value to move and check it against the target's rules."""
        with self.uow_factory() as uow:
            secret = uow.secrets.get(secret_id)
            if secret is None:
                return []
            versions = uow.secrets.list_versions(secret_id)
        found = []
        try:
            self.policy.check_name(secret.name)
        except InvalidInput as error:
            found.append(Misfit(secret_id, secret.name, None, error.message))
        for record in versions_to_move(secret, versions, source, all_versions):
            try:
                value = self.reader.fetch(secret, record)
                self.policy.check_value(value, target.capabilities.max_value_bytes, target.name)
            except (InvalidInput, NotFound, ValueIntegrityError) as error:
                found.append(Misfit(secret_id, secret.name, record.version, error.message))
        return found


def item_for(job_id: UUID, record: SecretVersion, now: datetime) -> JobItem:
    """A pending item moving version `record`."""
    return JobItem(
        job_id,
        record.secret_id,
        record.version,
        ItemState.PENDING,
        record.backend,
        record.locator,
        now,
    )


def job_scope(job: Job) -> ScopeRef:
    scope = job.params["scope"]
    return ScopeRef(ScopeType(scope["type"]), scope["id"])


def scope_text(job: Job) -> str:
    return str(job_scope(job))


def job_target(job: Job) -> Target:
    return Target(job_scope(job), job.params["scope_path"])
