"""Creating, updating, deleting and restoring a secret send their audit event to the chain with
the COMMIT (issue #20), as a write of a new version does: no statement takes the chain's head
lock before it (the lock is taken and released inside PostgreSQL), and a signed checkpoint
falling due makes the change go again the careful way, the chain valid and signed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from adapters.db.tables import audit_checkpoints, audit_events
from core.domain.values import Principal, ScopeRef, SecretValue
from core.secrets import MetadataChanges, NewSecret
from entrypoints.config import Settings
from entrypoints.container import Container

pytestmark = pytest.mark.postgres

ROOT = Principal("root", "root", is_root=True)


@pytest.fixture
def make_container(
    tmp_path: Path, _postgres_test_database: Any
) -> Iterator[Callable[..., Container]]:
    _postgres_test_database.reset()
    made: list[Container] = []

    def make(checkpoint_every: int = 1000) -> Container:
        settings = Settings(
            data_dir=tmp_path,
            database_url=_postgres_test_database.url,
            keys={"provider": "file", "path": str(tmp_path / "master.key")},
            audit={"checkpoint_every": checkpoint_every},
        )
        made.append(Container(settings=settings))
        return made[-1]

    yield make
    for container in made:
        container.shutdown_resources()


def statements_of(container: Container, change: Callable[[], object]) -> list[str]:
    sent: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        sent.append(" ".join(statement.split()))

    engine = container.engine()
    event.listen(engine, "before_cursor_execute", note)
    try:
        change()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return sent


def test_the_changes_append_their_event_with_the_commit(make_container):
    container = make_container()
    service, versions = container.secret_service(), container.version_service()
    created: list[Any] = []

    def create() -> None:
        created.append(
            service.create_secret(
                ROOT, NewSecret(ScopeRef.global_scope(), "AT_COMMIT"), SecretValue(b"v1")
            )
        )

    changes = {
        "create": create,
        "update": lambda: service.update_metadata(
            ROOT, created[0].id, MetadataChanges(description="d")
        ),
        "delete": lambda: service.delete_secret(ROOT, created[0].id),
        "restore": lambda: service.restore_secret(ROOT, created[0].id),
        "version.disable": lambda: versions.disable(ROOT, created[0].id, 1),
        "version.enable": lambda: versions.enable(ROOT, created[0].id, 1),
        "delete ": lambda: service.delete_secret(ROOT, created[0].id),
        "purge": lambda: service.purge_secret(ROOT, created[0].id),
    }
    for name, change in changes.items():
        if name == "version.disable":
            container.write_service().write_value(ROOT, created[0].id, SecretValue(b"v2"))
        sent = statements_of(container, change)
        # The old way locked the head (UPDATE secret_audit_head) and inserted the event inside
        # the transaction; now the append goes in the COMMIT's pipeline, past these hooks.
        # (A purge first closes the retention window in a transaction of its own, without an
        # event: its commit increments the change generation the ordinary way, once.)
        expected = 1 if name == "purge" else 0
        assert len([sql for sql in sent if "secret_audit" in sql]) == expected, name
        with container.engine().connect() as connection:
            last = connection.execute(
                select(audit_events.c.action, audit_events.c.outcome)
                .order_by(audit_events.c.seq.desc())
                .limit(1)
            ).one()
        assert tuple(last) == (f"secret.{name.strip()}", "success")
    assert container.audit_service().verify(ROOT).ok


def test_a_checkpoint_falling_due_makes_each_change_go_the_careful_way(make_container):
    container = make_container(checkpoint_every=2)
    service = container.secret_service()
    for number in range(3):
        secret = service.create_secret(
            ROOT, NewSecret(ScopeRef.global_scope(), f"DUE_{number}"), SecretValue(b"v1")
        )
        service.update_metadata(ROOT, secret.id, MetadataChanges(description="d"))
        service.delete_secret(ROOT, secret.id)
        restored = service.restore_secret(ROOT, secret.id)
        assert restored.deleted_at is None
    with container.engine().connect() as connection:
        signed = connection.execute(select(func.count()).select_from(audit_checkpoints))
        assert signed.scalar_one() >= 6
    assert container.audit_service().verify(ROOT).ok
