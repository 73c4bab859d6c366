"""The change stream's log on SQLite and PostgreSQL (`adapters.db.change_events`): each change
writes its row in its own transaction (none for a change rolled back, rows with no webhook
configured), read back in cursor order by `SqlChangeSource`, pruned by the worker after 24 h."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from adapters.db.change_events import SqlChangeSource
from adapters.db.tables import change_events
from adapters.db.uow import SqlUnitOfWork
from core.domain.access import Role, RoleBinding
from core.domain.changes import ChangeRecord
from core.domain.values import ScopeRef, ScopeType, SecretValue
from tests.unit.lifecycle_support import ALICE, GLOBAL, NOW, PROJECT, Lifecycle, wire

ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")


@pytest.fixture
def life(engine: Engine) -> Lifecycle:
    with SqlUnitOfWork(engine) as uow:
        acme = uow.scopes.add(ACME, uow.scopes.get(GLOBAL))
        uow.scopes.add(PROJECT, acme)
        uow.bindings.add(
            RoleBinding(uuid.uuid4(), ALICE.id, Role.ADMIN, GLOBAL, "/1/", NOW, "user:setup")
        )
        uow.commit()
    return wire(functools.partial(SqlUnitOfWork, engine), subscribers=())


def test_each_change_is_logged_in_order_without_any_webhook(
    life: Lifecycle, engine: Engine
) -> None:
    source = SqlChangeSource(engine)
    assert source.head() == 0
    secret = life.create(environment="production")
    life.writes.write_value(ALICE, secret.id, SecretValue(b"second-value"))
    logged = source.after(0, 10)
    assert [(r.type, r.version) for r in logged] == [("secret.created", 1), ("secret.updated", 2)]
    first = logged[0]
    assert first.scope == PROJECT and first.name == "DB_PASSWORD"
    assert first.environment == "production" and first.scope_path == secret.scope_path
    assert [r.id for r in logged] == sorted(r.id for r in logged) and source.head() == logged[1].id
    assert [r.id for r in source.after(first.id, 10)] == [logged[1].id]
    assert source.after(0, 10, upto=first.id) == [first]
    assert source.after(0, 1) == [first]


def test_a_change_rolled_back_leaves_no_event(engine: Engine) -> None:
    record = ChangeRecord(type="secret.created", secret_id=uuid.uuid4(), time=NOW)
    with SqlUnitOfWork(engine) as uow:
        uow.outbox.record_change(record)  # never committed
    with SqlUnitOfWork(engine) as uow:
        uow.outbox.record_change(record)
        uow.commit()
    [kept] = SqlChangeSource(engine).after(0, 10)
    assert kept.secret_id == record.secret_id and kept.scope is None


def test_the_worker_prunes_events_older_than_a_day(life: Lifecycle, engine: Engine) -> None:
    life.create(name="OLD")
    life.clock.advance(timedelta(hours=23))
    life.create(name="RECENT")
    life.clock.advance(timedelta(hours=1, seconds=1))
    report = life.worker().run_once()
    assert report.changes_pruned == 1
    [recent] = SqlChangeSource(engine).after(0, 10)
    assert recent.name == "RECENT"
    # a cursor is never given out again, even once every row is pruned
    life.clock.advance(timedelta(days=2))
    life.worker().run_once()
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(change_events)).scalar() == 0
    life.create(name="LATER")
    [later] = SqlChangeSource(engine).after(0, 10)
    assert later.id > recent.id
