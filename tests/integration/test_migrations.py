"""The Alembic migrations on real SQLite and PostgreSQL databases shared with other modules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from adapters.db import migrate
from adapters.db.engine import create_engine_from_url
from adapters.db.tables import ALEMBIC_VERSION_TABLE, PREFIX, metadata
from adapters.db.uow import SqlUnitOfWork
from core.domain.values import ScopeRef, ScopeType


@pytest.fixture
def empty_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_engine_from_url(empty_database_url, track_changes=False)
    yield engine
    engine.dispose()


@pytest.fixture
def foreign_tables(empty_engine: Engine) -> None:
    """What another module of the platform keeps in the shared database before we migrate."""
    with empty_engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('other_module_head')"))
        connection.execute(text("CREATE TABLE other_module_table (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO other_module_table VALUES (7)"))


def test_upgrade_creates_only_secret_tables_and_reaches_head(empty_engine):
    assert migrate.current_revision(empty_engine) is None
    migrate.upgrade(empty_engine)
    tables = set(inspect(empty_engine).get_table_names())
    assert tables == {table.name for table in metadata.sorted_tables} | {ALEMBIC_VERSION_TABLE}
    assert all(name.startswith(PREFIX) for name in tables)
    assert migrate.current_revision(empty_engine) == migrate.head_revision() is not None


def test_upgrade_inserts_the_one_global_scope(empty_engine):
    migrate.upgrade(empty_engine)
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT pk, type, external_id, parent_pk, path FROM secret_scopes")
        ).all()
    assert [tuple(row) for row in rows] == [(1, "global", "global", None, "/1/")]


def migrate_to(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


# pk -> parent pk, made under 0001 (before paths). Keys are chosen so that a child can have a
# smaller key than its parent: the backfill must walk the tree, not the keys.
SCOPES_BEFORE_PATHS = {
    100: ("organization", "acme", 1),
    50: ("team", "t-1", 100),
    7: ("project", "p-42", 50),
    8: ("project", "p-43", 100),
    30: ("user", "alice", 1),
    200: ("organization", "other", 1),
    201: ("team", "t-9", 200),
}
BACKFILLED_PATHS = {
    1: "/1/",
    100: "/1/100/",
    50: "/1/100/50/",
    7: "/1/100/50/7/",
    8: "/1/100/8/",
    30: "/1/30/",
    200: "/1/200/",
    201: "/1/200/201/",
}


def test_migration_0002_gives_existing_scopes_their_paths(empty_engine):
    migrate_to(empty_engine, "0001")
    with empty_engine.begin() as connection:
        for pk, (scope_type, external_id, parent_pk) in SCOPES_BEFORE_PATHS.items():
            connection.execute(
                text(
                    "INSERT INTO secret_scopes (pk, type, external_id, parent_pk, created_at)"
                    " VALUES (:pk, :type, :external_id, :parent_pk, CURRENT_TIMESTAMP)"
                ),
                {"pk": pk, "type": scope_type, "external_id": external_id, "parent_pk": parent_pk},
            )

    migrate.upgrade(empty_engine)

    with empty_engine.connect() as connection:
        paths = dict(connection.execute(text("SELECT pk, path FROM secret_scopes")).all())
    assert paths == BACKFILLED_PATHS
    with SqlUnitOfWork(empty_engine) as uow:
        team = uow.scopes.get(ScopeRef(ScopeType.TEAM, "t-1"))
        project = uow.scopes.add(ScopeRef(ScopeType.PROJECT, "p-44"), team)
        uow.commit()
    assert project.path == f"/1/100/50/{project.pk}/"


def test_foreign_keys_are_enforced_again_after_upgrading(empty_engine):
    migrate.upgrade(empty_engine)

    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO secret_scopes (type, external_id, parent_pk, created_at, path)"
                " VALUES ('team', 't-1', 999, CURRENT_TIMESTAMP, '/999/')"
            )
        )


def test_migration_0002_can_be_undone_and_redone(empty_engine):
    migrate.upgrade(empty_engine)

    migrate_to(empty_engine, "0001", down=True)
    tables = set(inspect(empty_engine).get_table_names())
    assert "secret_role_bindings" not in tables and "secret_api_tokens" not in tables
    assert "path" not in {c["name"] for c in inspect(empty_engine).get_columns("secret_scopes")}

    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT path FROM secret_scopes")).scalar_one() == "/1/"


@pytest.mark.usefixtures("foreign_tables")
def test_upgrade_leaves_other_modules_tables_alone(empty_engine):
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            ("other_module_head",)
        ]
        assert connection.execute(text("SELECT id FROM other_module_table")).all() == [(7,)]
    assert migrate.current_revision(empty_engine) == migrate.head_revision()


@pytest.mark.usefixtures("foreign_tables")
def test_the_migrated_schema_matches_the_table_definitions(empty_engine):
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": ALEMBIC_VERSION_TABLE,
                "include_name": migrate.include_name,
                "compare_type": True,
            },
        )
        assert compare_metadata(context, metadata) == []


def test_migration_0004_gives_existing_secrets_their_latest_version(empty_engine):
    migrate_to(empty_engine, "0003")
    secret_id = uuid.uuid4()
    stored_id = secret_id.hex if empty_engine.dialect.name == "sqlite" else str(secret_id)
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO secret_secrets (id, scope_pk, name, environment, type, description,"
                " tags, consumer, backend, current_version, created_at, created_by, revision)"
                " VALUES (:id, 1, 'OLD', '', 'generic', '', '{}', 'other', 'local', 3,"
                " CURRENT_TIMESTAMP, 'user:alice', 3)"
            ),
            {"id": stored_id},
        )

    migrate.upgrade(empty_engine)

    with SqlUnitOfWork(empty_engine) as uow:
        stored = uow.secrets.get(secret_id)
    assert (stored.current_version, stored.latest_version, stored.pending_version) == (3, 3, None)
    migrate_to(empty_engine, "0003", down=True)
    assert "secret_outbox" not in inspect(empty_engine).get_table_names()
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
