"""Worker heartbeats and the backlog on real SQLite and PostgreSQL: a row per worker written and
removed, old rows forgotten, and the backlog counted as the worker's claims see the work."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from adapters.db.tables import outbox
from adapters.db.uow import SqlUnitOfWork
from adapters.db.worker_registry import SqlWorkerRegistry
from core.backends import BackendRegistry
from core.domain.access import Role, RoleBinding
from core.domain.migration import MigrationRequest
from core.domain.values import ScopeRef, ScopeType
from core.migration.service import MigrationService
from core.policy import SecretPolicy, ValueChecksum
from ports.workers import Backlog, WorkerRecord
from tests.fakes import InMemoryBackend, make_audit_trail
from tests.unit.lifecycle_support import (
    ALICE,
    CHECKSUM_KEY,
    GLOBAL,
    NOW,
    PROJECT,
    Lifecycle,
    wire,
)


@pytest.fixture
def life(engine: Engine) -> Lifecycle:
    with SqlUnitOfWork(engine) as uow:
        acme = uow.scopes.add(ScopeRef(ScopeType.ORGANIZATION, "acme"), uow.scopes.get(GLOBAL))
        uow.scopes.add(PROJECT, acme)
        uow.bindings.add(
            RoleBinding(uuid.uuid4(), ALICE.id, Role.ADMIN, GLOBAL, "/1/", NOW, "user:setup")
        )
        uow.commit()
    return wire(functools.partial(SqlUnitOfWork, engine))


def test_a_worker_row_is_written_updated_and_removed(engine: Engine) -> None:
    registry = SqlWorkerRegistry(engine)
    first = WorkerRecord("host-a:10:aa", "host-a", 10, NOW, NOW)
    registry.beat(first)
    later = WorkerRecord("host-a:10:aa", "host-a", 10, NOW, NOW + timedelta(seconds=10), "x" * 300)
    registry.beat(later)
    registry.beat(WorkerRecord("host-b:20:bb", "host-b", 20, NOW, NOW - timedelta(days=2)))

    rows = registry.workers()
    assert [(row.id, row.last_heartbeat_at) for row in rows] == [
        ("host-a:10:aa", NOW + timedelta(seconds=10)),
        ("host-b:20:bb", NOW - timedelta(days=2)),
    ]
    assert rows[0].current_job == "x" * 255 and rows[0].started_at == NOW

    assert registry.forget_silent_since(NOW - timedelta(days=1)) == 1
    registry.remove("host-a:10:aa")
    assert registry.workers() == []


def test_the_backlog_counts_what_the_worker_would_claim(life: Lifecycle, engine: Engine) -> None:
    registry = SqlWorkerRegistry(engine)
    assert registry.backlog(NOW) == Backlog(0, 0, 0, 0)

    due = life.create(name="DUE")
    life.policy(due.id, interval_seconds=3600)
    later = life.create(name="LATER")
    life.policy(later.id, interval_seconds=7200)
    gone = life.create(name="GONE")
    life.policy(gone.id, interval_seconds=3600)
    life.secrets.delete_secret(ALICE, gone.id)
    with engine.begin() as connection:
        ids = list(connection.execute(select(outbox.c.id).order_by(outbox.c.id)).scalars())
        connection.execute(update(outbox).where(outbox.c.id == ids[0]).values(delivered_at=NOW))
        connection.execute(update(outbox).where(outbox.c.id == ids[1]).values(next_attempt_at=None))
    vault = InMemoryBackend("vault")
    both = BackendRegistry({life.backend.name: life.backend, "vault": vault}, life.backend.name)
    audit = make_audit_trail(life.db, life.clock, changes=life.feed)
    migrations = MigrationService(
        life.db, both, life.clock, ValueChecksum(CHECKSUM_KEY), SecretPolicy(), audit
    )
    migrations.start(ALICE, MigrationRequest(life.backend.name, "vault", PROJECT))

    backlog = registry.backlog(NOW + timedelta(hours=1))

    assert backlog == Backlog(
        outbox_pending=len(ids) - 2, outbox_given_up=1, jobs_queued=1, rotations_due=1
    )
    assert len(ids) > 2
