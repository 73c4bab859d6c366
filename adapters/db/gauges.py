"""What the operations gauges of `/metrics` read from the database at each scrape: the work
waiting for a worker and how late it is, failed rotations, secrets about to expire, and the
workers' heartbeats. Counts only: no name, id or value leaves this module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, func, select

from adapters.db.tables import jobs, outbox, rotation_policies, secrets, workers

UNFINISHED_JOBS = ("pending", "running")


@dataclass(frozen=True)
class OperationsGauges:
    """`outbox`: undelivered events by state (`pending`: not tried yet, `retrying`: failed at
    least once and to be tried again, `given_up`); `jobs`: unfinished migrations by state;
    `lag_seconds`: per queue, how long its oldest due item has waited (0 when none is due);
    `expiring`: live secrets expiring within each number of days (0: already expired)."""

    outbox: dict[str, int]
    jobs: dict[str, int]
    rotations_due: int
    rotations_failed: int
    lag_seconds: dict[str, float]
    expiring: dict[int, int]
    workers: int
    heartbeat_age_seconds: float | None


def read_gauges(engine: Engine, now: datetime, within_days: tuple[int, ...]) -> OperationsGauges:
    with engine.connect() as connection:
        outbox_counts, outbox_since = _outbox(connection, now)
        job_counts, jobs_since = _jobs(connection)
        due, failed, rotations_since = _rotations(connection, now)
        expiring = _expiring(connection, now, within_days)
        alive, last_beat = connection.execute(
            select(func.count(), func.max(workers.c.last_heartbeat_at))
        ).one()
    return OperationsGauges(
        outbox=outbox_counts,
        jobs=job_counts,
        rotations_due=due,
        rotations_failed=failed,
        lag_seconds={
            "outbox": _waited(now, outbox_since),
            "rotation": _waited(now, rotations_since),
            "migration": _waited(now, jobs_since),
        },
        expiring=expiring,
        workers=alive,
        heartbeat_age_seconds=None if last_beat is None else _waited(now, last_beat),
    )


def _outbox(connection: Connection, now: datetime) -> tuple[dict[str, int], datetime | None]:
    undelivered = outbox.c.delivered_at.is_(None)
    scheduled = outbox.c.next_attempt_at.is_not(None)
    count = func.count()
    fresh, retrying, given_up, oldest_due = connection.execute(
        select(
            count.filter(and_(scheduled, outbox.c.attempts == 0)),
            count.filter(and_(scheduled, outbox.c.attempts > 0)),
            count.filter(outbox.c.next_attempt_at.is_(None)),
            func.min(outbox.c.next_attempt_at).filter(outbox.c.next_attempt_at <= now),
        ).where(undelivered)
    ).one()
    return {"pending": fresh, "retrying": retrying, "given_up": given_up}, oldest_due


def _jobs(connection: Connection) -> tuple[dict[str, int], datetime | None]:
    rows = connection.execute(
        select(jobs.c.state, func.count(), func.min(jobs.c.created_at))
        .where(jobs.c.state.in_(UNFINISHED_JOBS))
        .group_by(jobs.c.state)
    ).all()
    found = {state: (count, oldest) for state, count, oldest in rows}
    pending_since = found.get("pending", (0, None))[1]
    return {state: found.get(state, (0, None))[0] for state in UNFINISHED_JOBS}, pending_since


def _rotations(connection: Connection, now: datetime) -> tuple[int, int, datetime | None]:
    due = rotation_policies.c.next_run_at <= now
    count = func.count()
    due_count, failed, oldest_due = connection.execute(
        select(
            count.filter(due),
            count.filter(rotation_policies.c.last_status == "failed"),
            func.min(rotation_policies.c.next_run_at).filter(due),
        )
        .select_from(rotation_policies.join(secrets, secrets.c.id == rotation_policies.c.secret_id))
        .where(secrets.c.deleted_at.is_(None))
    ).one()
    return due_count, failed, oldest_due


def _expiring(
    connection: Connection, now: datetime, within_days: tuple[int, ...]
) -> dict[int, int]:
    expires = secrets.c.expires_at
    count = func.count()
    windows = sorted({0, *within_days})
    counts = connection.execute(
        select(
            *(
                count.filter(expires <= now)
                if days == 0
                else count.filter(and_(expires > now, expires <= now + timedelta(days=days)))
                for days in windows
            )
        ).where(secrets.c.deleted_at.is_(None), expires.is_not(None))
    ).one()
    return dict(zip(windows, counts, strict=True))


def _waited(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
