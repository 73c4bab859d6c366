"""Worker heartbeats and the backlog (`ports.workers`) on SQLAlchemy Core, each call in a short
transaction of its own: a heartbeat must not wait for, nor be undone with, the job it reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from adapters.db.tables import jobs, outbox, rotation_policies, secrets, workers
from ports.workers import Backlog, WorkerRecord, WorkerRegistry

UNFINISHED_JOBS = ("pending", "running")


class SqlWorkerRegistry(WorkerRegistry):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def beat(self, record: WorkerRecord) -> None:
        values: dict[str, Any] = {
            "host": record.host[:255],
            "pid": record.pid,
            "started_at": record.started_at,
            "last_heartbeat_at": record.last_heartbeat_at,
            "current_job": record.current_job[:255] if record.current_job else None,
        }
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(workers).where(workers.c.id == record.id).values(**values)
            )
            if not changed.rowcount:  # only this worker writes its row: no one races the insert
                connection.execute(insert(workers).values(id=record.id, **values))

    def remove(self, worker_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(workers).where(workers.c.id == worker_id))

    def forget_silent_since(self, moment: datetime) -> int:
        with self._engine.begin() as connection:
            removed = connection.execute(
                delete(workers).where(workers.c.last_heartbeat_at < moment)
            )
        return removed.rowcount

    def workers(self) -> list[WorkerRecord]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(workers).order_by(workers.c.last_heartbeat_at.desc(), workers.c.id)
            ).all()
        return [
            WorkerRecord(
                id=row.id,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                last_heartbeat_at=row.last_heartbeat_at,
                current_job=row.current_job,
            )
            for row in rows
        ]

    def backlog(self, now: datetime) -> Backlog:
        undelivered = outbox.c.delivered_at.is_(None)
        count = func.count()
        with self._engine.connect() as connection:
            pending, given_up = connection.execute(
                select(
                    count.filter(outbox.c.next_attempt_at.is_not(None)),
                    count.filter(outbox.c.next_attempt_at.is_(None)),
                ).where(undelivered)
            ).one()
            queued = connection.execute(
                select(count).where(jobs.c.state.in_(UNFINISHED_JOBS))
            ).scalar_one()
            due = connection.execute(
                select(count)
                .select_from(
                    rotation_policies.join(secrets, secrets.c.id == rotation_policies.c.secret_id)
                )
                .where(secrets.c.deleted_at.is_(None), rotation_policies.c.next_run_at <= now)
            ).scalar_one()
        return Backlog(
            outbox_pending=pending, outbox_given_up=given_up, jobs_queued=queued, rotations_due=due
        )
