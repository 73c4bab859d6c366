"""`SqlJobRepository` on SQLite and PostgreSQL: claims under a lease, holding it, taking over,
items, and the secrets a migration selects."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from adapters.db.uow import SqlUnitOfWork
from core.domain.errors import PreconditionFailed
from core.domain.jobs import Job, JobItem
from core.domain.secrets import Secret, SecretFilter, SecretVersion, VersionState
from core.domain.values import ScopeRef
from core.domain.work import Lease

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACTIVE = ("pending", "running")


def lease(worker: str, at: datetime = NOW) -> Lease:
    return Lease(worker, at, at + timedelta(minutes=5))


def new_job(created_at: datetime = NOW) -> Job:
    return Job(
        id=uuid.uuid4(),
        kind="migration",
        state="pending",
        params={"from": "a", "to": "b"},
        created_by="user:alice",
        created_by_type="user",
        created_at=created_at,
        updated_at=created_at,
        total=1,
        counters={"versions": 1},
        report={"failures": []},
    )


def add_secret(engine: Engine, name: str, backend: str, versions: int = 2) -> Secret:
    secret = Secret(
        id=uuid.uuid4(),
        scope=ScopeRef.global_scope(),
        name=name,
        backend=backend,
        created_at=NOW,
        created_by="user:alice",
        current_version=versions,
    )
    with SqlUnitOfWork(engine) as uow:
        uow.secrets.add(secret)
        for number in range(1, versions + 1):
            uow.secrets.add_version(
                SecretVersion(secret.id, number, backend, f"loc-{number}", "c", NOW, "user:alice")
            )
        uow.commit()
    return secret


def test_a_job_is_claimed_by_one_runner_until_its_lease_runs_out(engine: Engine) -> None:
    older, newer = new_job(NOW - timedelta(minutes=1)), new_job()
    with SqlUnitOfWork(engine) as uow:
        uow.jobs.add(older, [])
        uow.jobs.add(newer, [])
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        claimed = uow.jobs.claim(None, "migration", ACTIVE, lease("a"))
        uow.commit()
    assert claimed is not None and claimed.id == older.id and claimed.lease_owner == "a"
    with SqlUnitOfWork(engine) as uow:
        assert uow.jobs.claim(older.id, "migration", ACTIVE, lease("b")) is None
        assert uow.jobs.claim(None, "migration", ACTIVE, lease("b")).id == newer.id
        uow.commit()

    later = NOW + timedelta(minutes=6)
    with SqlUnitOfWork(engine) as uow:
        assert uow.jobs.claim(older.id, "migration", ACTIVE, lease("c", later)) is not None
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert not uow.jobs.hold(older.id, lease("a", later))  # taken over: a must stop
        assert uow.jobs.hold(older.id, lease("c", later))
        assert uow.jobs.claim(older.id, "migration", ACTIVE, lease("d", later), take_over=True)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.jobs.get(older.id).lease_owner == "d"
        assert uow.jobs.claim(older.id, "migration", ("running",), lease("e", later)) is None


def test_progress_and_items_are_saved_and_read_back(engine: Engine) -> None:
    job = new_job()
    secret_id = uuid.uuid4()
    items = [
        JobItem(job.id, secret_id, number, "pending", "a", f"loc-{number}", NOW)
        for number in (0, 1, 2)
    ]
    with SqlUnitOfWork(engine) as uow:
        uow.jobs.add(job, items[:2])
        uow.jobs.add_items(items[2:])
        uow.commit()
    job = replace(job, state="running", done=1, report={"failures": [{"reason": "why"}]})
    with SqlUnitOfWork(engine) as uow:
        uow.jobs.update(job)
        uow.jobs.update_item(
            JobItem(job.id, secret_id, 1, "switched", "a", "loc-1", NOW, target_locator="t-1")
        )
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        stored = uow.jobs.get(job.id)
        assert (stored.state, stored.done, stored.report) == ("running", 1, job.report)
        assert [(i.version, i.state, i.target_locator) for i in uow.jobs.items(job.id)] == [
            (0, "pending", None),
            (1, "switched", "t-1"),
            (2, "pending", None),
        ]
        assert uow.jobs.pending_secrets(job.id, ("switched",)) == [secret_id]
        assert uow.jobs.pending_secrets(job.id, ("switched", "pending")) == []
        assert uow.jobs.kept_copies(secret_id, "a", "switched")
        assert not uow.jobs.kept_copies(secret_id, "b", "switched")
        assert [j.id for j in uow.jobs.unfinished("migration")] == [job.id]


def test_the_secrets_a_migration_selects(engine: Engine) -> None:
    on_a = add_secret(engine, "ON_A", "a")
    on_b = add_secret(engine, "ON_B", "b")
    old_on_a = add_secret(engine, "OLD_ON_A", "b")
    with SqlUnitOfWork(engine) as uow:
        record = uow.secrets.get_version(old_on_a.id, 1)
        uow.secrets.relocate_version(record, "a", "elsewhere")
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        everything = SecretFilter()
        assert set(uow.jobs.secrets_storing("a", everything, False)) == {on_a.id, old_on_a.id}
        assert uow.jobs.secrets_storing("a", everything, True) == [on_a.id]
        assert uow.jobs.secrets_storing("b", SecretFilter(prefix="ON_"), True) == [on_b.id]
        destroyed = uow.secrets.get_version(old_on_a.id, 1)
        uow.secrets.update_version(
            SecretVersion(**{**vars(destroyed), "state": VersionState.DESTROYED})
        )
        assert uow.jobs.secrets_storing("a", everything, False) == [on_a.id]


def test_relocating_a_version_that_moved_meanwhile_is_refused(engine: Engine) -> None:
    secret = add_secret(engine, "S", "a", versions=1)
    with SqlUnitOfWork(engine) as uow:
        record = uow.secrets.get_version(secret.id, 1)
        uow.secrets.relocate_version(record, "b", "new-loc")
        with pytest.raises(PreconditionFailed):
            uow.secrets.relocate_version(record, "c", "other")
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        moved = uow.secrets.get_version(secret.id, 1)
    assert (moved.backend, moved.locator) == ("b", "new-loc")
