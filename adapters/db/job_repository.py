"""Jobs and their items (`ports.jobs`) on SQLAlchemy Core, inside the caller's transaction.

A claim selects the candidate job `FOR UPDATE SKIP LOCKED` (on PostgreSQL) and stamps it with
the runner and the end of its lease in a conditional UPDATE that only a free job passes, as the
worker's other claims do (`adapters.db.lifecycle_repositories`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, and_, exists, insert, or_, select, update

from adapters.db.tables import job_items, jobs, scopes, secrets, versions
from core.domain.jobs import ItemState, Job, JobItem, JobState
from core.domain.secrets import SecretFilter, VersionState
from core.domain.work import Lease
from ports.jobs import JobRepository

JOB_COLUMNS = (
    "state",
    "params",
    "created_by",
    "created_by_type",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "total",
    "done",
    "failed",
    "counters",
    "report",
    "last_error",
    "lease_owner",
    "lease_until",
)
ITEM_COLUMNS = (
    "state",
    "source_backend",
    "source_locator",
    "target_locator",
    "error",
    "updated_at",
)


class SqlJobRepository(JobRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, job: Job, items: list[JobItem]) -> None:
        self._connection.execute(insert(jobs).values(id=job.id, kind=job.kind, **_job_values(job)))
        self.add_items(items)

    def get(self, job_id: UUID) -> Job | None:
        row = self._connection.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job_from_row(row)

    def search(self, kind: str, limit: int) -> list[Job]:
        rows = self._connection.execute(
            select(jobs)
            .where(jobs.c.kind == kind)
            .order_by(jobs.c.created_at.desc(), jobs.c.id)
            .limit(limit)
        )
        return [_job_from_row(row) for row in rows]

    def unfinished(self, kind: str) -> list[Job]:
        rows = self._connection.execute(
            select(jobs)
            .where(jobs.c.kind == kind, jobs.c.state.in_(("pending", "running")))
            .order_by(jobs.c.created_at, jobs.c.id)
        )
        return [_job_from_row(row) for row in rows]

    def claim(
        self,
        job_id: UUID | None,
        kind: str,
        states: tuple[str, ...],
        lease: Lease,
        *,
        take_over: bool = False,
    ) -> Job | None:
        conditions = [jobs.c.kind == kind, jobs.c.state.in_(states)]
        if job_id is not None:
            conditions.append(jobs.c.id == job_id)
        if not take_over:
            conditions.append(or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < lease.now))
        candidate = self._connection.execute(
            select(jobs.c.id)
            .where(*conditions)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if candidate is None:
            return None
        claimed = self._connection.execute(
            update(jobs)
            .where(jobs.c.id == candidate, *conditions)
            .values(lease_owner=lease.worker, lease_until=lease.until, updated_at=lease.now)
        )
        return self.get(candidate) if claimed.rowcount else None

    def hold(self, job_id: UUID, lease: Lease) -> bool:
        result = self._connection.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == lease.worker)
            .values(lease_until=lease.until)
        )
        return bool(result.rowcount)

    def update(self, job: Job) -> None:
        self._connection.execute(update(jobs).where(jobs.c.id == job.id).values(**_job_values(job)))

    def items(self, job_id: UUID, secret_id: UUID | None = None) -> list[JobItem]:
        statement = select(job_items).where(job_items.c.job_id == job_id)
        if secret_id is not None:
            statement = statement.where(job_items.c.secret_id == secret_id)
        rows = self._connection.execute(
            statement.order_by(job_items.c.secret_id, job_items.c.version)
        )
        return [_item_from_row(row) for row in rows]

    def pending_secrets(self, job_id: UUID, finished: tuple[str, ...]) -> list[UUID]:
        return list(
            self._connection.execute(
                select(job_items.c.secret_id)
                .where(job_items.c.job_id == job_id, job_items.c.state.not_in(finished))
                .group_by(job_items.c.secret_id)
                .order_by(job_items.c.secret_id)
            ).scalars()
        )

    def add_items(self, items: list[JobItem]) -> None:
        if items:
            self._connection.execute(insert(job_items), [_item_values(item) for item in items])

    def update_item(self, item: JobItem) -> None:
        values = _item_values(item)
        self._connection.execute(
            update(job_items)
            .where(
                job_items.c.job_id == item.job_id,
                job_items.c.secret_id == item.secret_id,
                job_items.c.version == item.version,
            )
            .values(**{column: values[column] for column in ITEM_COLUMNS})
        )

    def kept_copies(self, secret_id: UUID, backend: str, state: str) -> bool:
        return bool(
            self._connection.execute(
                select(
                    exists().where(
                        job_items.c.secret_id == secret_id,
                        job_items.c.source_backend == backend,
                        job_items.c.state == state,
                        job_items.c.version > 0,
                    )
                )
            ).scalar()
        )

    def secrets_storing(
        self, backend: str, criteria: SecretFilter, current_only: bool
    ) -> list[UUID]:
        holding = [
            versions.c.secret_id == secrets.c.id,
            versions.c.backend == backend,
            versions.c.state != VersionState.DESTROYED.value,
        ]
        if current_only:
            holding.append(
                or_(
                    versions.c.version == secrets.c.current_version,
                    and_(
                        secrets.c.pending_version.is_not(None),
                        versions.c.version == secrets.c.pending_version,
                    ),
                )
            )
        conditions = [or_(secrets.c.backend == backend, exists().where(*holding))]
        if criteria.under_path is not None:
            conditions.append(scopes.c.path.startswith(criteria.under_path, autoescape=True))
        if criteria.environment is not None:
            conditions.append(secrets.c.environment == criteria.environment)
        if criteria.prefix:
            conditions.append(secrets.c.name.startswith(criteria.prefix, autoescape=True))
        return list(
            self._connection.execute(
                select(secrets.c.id)
                .select_from(secrets.join(scopes, secrets.c.scope_pk == scopes.c.pk))
                .where(*conditions)
                .order_by(secrets.c.id)
            ).scalars()
        )


def _job_values(job: Job) -> dict[str, Any]:
    values = {column: getattr(job, column) for column in JOB_COLUMNS}
    values["state"] = str(job.state)
    return values


def _job_from_row(row: Row[Any]) -> Job:
    values = {column: getattr(row, column) for column in JOB_COLUMNS}
    values["state"] = JobState(values["state"])
    return Job(id=row.id, kind=row.kind, **values)


def _item_values(item: JobItem) -> dict[str, Any]:
    return {
        "job_id": item.job_id,
        "secret_id": item.secret_id,
        "version": item.version,
        **{column: getattr(item, column) for column in ITEM_COLUMNS},
        "state": str(item.state),
    }


def _item_from_row(row: Row[Any]) -> JobItem:
    return JobItem(
        job_id=row.job_id,
        secret_id=row.secret_id,
        version=row.version,
        **{column: getattr(row, column) for column in ITEM_COLUMNS if column != "state"},
        state=ItemState(row.state),
    )
