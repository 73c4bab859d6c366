"""What a write of a new version costs the database and the process (issue #20): the secret is
read once (its row lock), not again for the change stream's record; the statements it runs on
the secret's tables are built once, not per write (building and keying one costs more CPU than
its round trip); and the in-transaction memory of what was written never outlives a change
that should end it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.db.tables import change_events
from core.domain.errors import PreconditionFailed
from core.domain.values import Principal, ScopeRef, SecretValue
from core.secrets import NewSecret
from entrypoints.config import Settings
from entrypoints.container import Container
from tests.support.statements import recorded as statements_of

pytestmark = pytest.mark.postgres

ROOT = Principal("root", "root", is_root=True)
WRITE_TABLES = (
    "secret_secrets",
    "secret_versions",
    "secret_encrypted_values",
    "secret_change_events",
)


@pytest.fixture
def container(tmp_path: Path, _postgres_test_database: Any) -> Iterator[Container]:
    _postgres_test_database.reset()
    settings = Settings(
        data_dir=tmp_path,
        database_url=_postgres_test_database.url,
        keys={"provider": "file", "path": str(tmp_path / "master.key")},
    )
    made = Container(settings=settings)
    yield made
    made.shutdown_resources()


def recorded(container: Container, write: Callable[[], object]) -> list[tuple[object, str]]:
    """The statements `write` runs: (the statement object executed, its SQL)."""
    return statements_of(container.engine(), write)


def test_a_write_reads_the_secret_once_and_its_change_record_is_complete(container):
    secret = container.secret_service().create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "ONCE", environment="prod"), SecretValue(b"v1")
    )
    writes = container.write_service()
    statements = recorded(
        container, lambda: writes.write_value(ROOT, secret.id, SecretValue(b"v2"))
    )
    reads = [sql for _, sql in statements if sql.startswith("SELECT secret_secrets.id")]
    assert len(reads) == 1 and reads[0].endswith("FOR UPDATE OF secret_secrets")
    with container.engine().connect() as connection:
        change = connection.execute(
            select(change_events).order_by(change_events.c.id.desc()).limit(1)
        ).one()
    assert (change.type, change.secret_id, change.version) == ("secret.updated", secret.id, 2)
    assert (change.name, change.environment) == ("ONCE", "prod")
    assert (change.scope_type, change.scope_id, change.scope_path) == (
        "global",
        "global",
        secret.scope_path,
    )


def test_the_write_statements_on_the_secret_tables_are_built_once(container):
    service, writes = container.secret_service(), container.write_service()
    ids = [
        service.create_secret(ROOT, NewSecret(ScopeRef.global_scope(), name), SecretValue(b"v")).id
        for name in ("A", "B")
    ]

    def built(secret_id: Any) -> list[object]:
        statements = recorded(
            container, lambda: writes.write_value(ROOT, secret_id, SecretValue(b"next"))
        )
        return [
            statement
            for statement, sql in statements
            if any(f" {table} " in f" {sql} " for table in WRITE_TABLES)
        ]

    first, second = built(ids[0]), built(ids[1])
    assert len(first) == 5  # lock, update, version, its ciphertext, the change record
    assert all(a is b for a, b in zip(first, second, strict=True))


def test_what_a_unit_of_work_wrote_is_what_it_reads_back_until_changed_again(container):
    secret = container.secret_service().create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "MEMO"), SecretValue(b"v1")
    )
    with container.unit_of_work() as uow:
        found = uow.secrets.lock(secret.id)
        assert found is not None
        changed = found.changed(ROOT, found.created_at, description="one")
        uow.secrets.update(changed, found.revision)
        assert uow.secrets.get(secret.id) == changed
        with pytest.raises(PreconditionFailed):  # a stale revision: nothing written
            uow.secrets.update(changed.changed(ROOT, found.created_at, description="x"), 0)
        again = uow.secrets.get(secret.id)
        assert again is not None and again.description == "one"
        uow.secrets.update_many(
            [(again.changed(ROOT, found.created_at, description="two"), again.revision)]
        )
        after_many = uow.secrets.get(secret.id)
        assert after_many is not None and after_many.description == "two"
        uow.secrets.delete(secret.id)
        assert uow.secrets.get(secret.id) is None
