"""A write's audit event goes to the chain with the write's COMMIT (issue 20): on PostgreSQL
the chain's lock is not taken before the commit is sent, the event commits with the change or
neither does, a signed checkpoint falling due makes the write go again the careful way, and
concurrent writers of several processes leave one valid chain."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from adapters.db.tables import audit_checkpoints, audit_events, audit_head, secrets
from core.audit_chain import CheckpointDue
from core.domain.audit import AuditEvent
from core.domain.values import Principal, ScopeRef, SecretValue
from core.secrets import MetadataChanges, NewSecret
from entrypoints.config import Settings
from entrypoints.container import Container

pytestmark = pytest.mark.postgres

ROOT = Principal("root", "root", is_root=True)
WRITERS = 24


@pytest.fixture
def make_container(
    tmp_path: Path, _postgres_test_database: object
) -> Iterator[Callable[..., Container]]:
    database = _postgres_test_database
    database.reset()  # type: ignore[attr-defined]
    made: list[Container] = []

    def make(checkpoint_every: int = 1000) -> Container:
        settings = Settings(
            data_dir=tmp_path,
            database_url=database.url,  # type: ignore[attr-defined]
            keys={"provider": "file", "path": str(tmp_path / "master.key")},
            audit={"checkpoint_every": checkpoint_every},
        )
        made.append(Container(settings=settings))
        return made[-1]

    yield make
    for container in made:
        container.shutdown_resources()


def event(resource: str) -> AuditEvent:
    from datetime import UTC, datetime

    return AuditEvent(
        time=datetime.now(UTC),
        actor="root",
        actor_type="root",
        action="secret.write_value",
        resource=resource,
        outcome="success",
    )


def head_locked_elsewhere(engine: Engine) -> bool:
    """Whether another transaction holds the chain's head row lock now."""
    with engine.connect() as connection:
        connection.execute(text("SET lock_timeout = '200ms'"))
        try:
            connection.execute(text("SELECT 1 FROM secret_audit_head WHERE id = 1 FOR UPDATE"))
        except Exception:
            return True
        finally:
            connection.rollback()
    return False


def test_the_head_is_not_locked_before_the_commit_and_the_event_commits_with_it(make_container):
    container = make_container()
    engine = container.engine()
    chain = container.audit_chain()
    secret = container.secret_service().create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "LATE"), SecretValue(b"v1")
    )
    with container.unit_of_work() as uow:
        found = uow.secrets.get(secret.id)
        assert found is not None
        uow.secrets.update(
            found.changed(ROOT, found.created_at, description="late"), found.revision
        )
        pending = chain.append_at_commit(uow, [event(f"secret:{secret.id}")])
        assert pending == []  # filled once committed
        assert not head_locked_elsewhere(engine)  # reads and other writes still append
        uow.commit()
    assert [linked.resource for linked in pending] == [f"secret:{secret.id}"]
    with engine.connect() as connection:
        head = connection.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
        stored = connection.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc())
        ).first()
        description = connection.execute(
            select(secrets.c.description).where(secrets.c.id == secret.id)
        ).scalar_one()
    assert (pending[0].seq, pending[0].hash) == tuple(head) == tuple(stored)
    assert description == "late"
    assert container.audit_service().verify(ROOT).ok


def test_a_checkpoint_falling_due_commits_neither_the_change_nor_the_event(make_container):
    container = make_container()
    engine = container.engine()
    secret = container.secret_service().create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "DUE"), SecretValue(b"v1")
    )
    with engine.connect() as connection:
        head_before = connection.execute(select(audit_head.c.seq)).scalar_one()
    due = make_container(checkpoint_every=head_before + 1).audit_chain()
    with pytest.raises(CheckpointDue), container.unit_of_work() as uow:
        found = uow.secrets.get(secret.id)
        assert found is not None
        uow.secrets.update(
            found.changed(ROOT, found.created_at, description="never"), found.revision
        )
        due.append_at_commit(uow, [event(f"secret:{secret.id}")])
        uow.commit()
    with engine.connect() as connection:
        assert connection.execute(select(audit_head.c.seq)).scalar_one() == head_before
        assert (
            connection.execute(
                select(secrets.c.description).where(secrets.c.id == secret.id)
            ).scalar_one()
            != "never"
        )


def test_a_write_increments_the_change_generation_once_and_caches_see_it(make_container):
    container = make_container()
    service, reads = container.secret_service(), container.read_service()
    secret = service.create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "CACHED"), SecretValue(b"v1")
    )
    assert reads.read_value(ROOT, secret.id).value.reveal() == b"v1"  # now cached
    with container.engine().connect() as connection:
        before = connection.execute(select(audit_head.c.generation)).scalar_one()
    container.write_service().write_value(ROOT, secret.id, SecretValue(b"v2"))
    with container.engine().connect() as connection:
        after = connection.execute(select(audit_head.c.generation)).scalar_one()
    assert after == before + 1
    assert reads.read_value(ROOT, secret.id).value.reveal() == b"v2"
    other = make_container()  # another process's cache, filled before the next write
    assert other.read_service().read_value(ROOT, secret.id).value.reveal() == b"v2"
    container.write_service().write_value(ROOT, secret.id, SecretValue(b"v3"))
    assert other.read_service().read_value(ROOT, secret.id).value.reveal() == b"v3"


def test_concurrent_writers_with_checkpoints_falling_due_all_land_on_one_valid_chain(
    make_container,
):
    """Checkpoints every 3 events: many writes meet one, go again, and land all the same."""
    processes = [make_container(checkpoint_every=3) for _ in range(3)]
    service = processes[0].secret_service()
    created = [
        service.create_secret(ROOT, NewSecret(ScopeRef.global_scope(), f"W{n}"), SecretValue(b"v1"))
        for n in range(4)
    ]
    barrier = threading.Barrier(WRITERS)
    results: list[object] = [None] * WRITERS

    def write(index: int) -> None:
        barrier.wait()
        process = processes[index % len(processes)]
        target = created[index % len(created)]
        try:
            if index % 6 == 5:  # a metadata change (its event appended under the lock)
                changes = MetadataChanges(description=f"d{index}")
                process.secret_service().update_metadata(ROOT, target.id, changes)
                results[index] = "changed"
            else:
                value = SecretValue(b"w-%d" % index)
                results[index] = process.write_service().write_value(ROOT, target.id, value)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not [result for result in results if isinstance(result, Exception)], results
    written = [result for result in results if result != "changed"]
    verification = processes[0].audit_service().verify(ROOT)
    assert verification.ok, verification.broken
    engine = processes[0].engine()
    with engine.connect() as connection:
        head_seq = connection.execute(select(audit_head.c.seq)).scalar_one()
        signed = connection.execute(select(audit_checkpoints.c.seq)).scalars().all()
        writes = connection.execute(
            select(audit_events.c.resource, audit_events.c.version).where(
                audit_events.c.action == "secret.write_value",
                audit_events.c.outcome == "success",
            )
        ).all()
    assert sorted(signed) == list(range(3, head_seq + 1, 3))
    assert len(writes) == len(written)
    for target in created:  # each acknowledged version has its event, gapless per secret
        versions = sorted(v for resource, v in writes if resource == f"secret:{target.id}")
        assert versions == list(range(2, len(versions) + 2))
