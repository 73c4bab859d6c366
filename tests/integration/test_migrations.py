"""The Alembic migrations on real SQLite and PostgreSQL databases shared with other modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from adapters.db import migrate
from adapters.db.engine import create_engine_from_url
from adapters.db.tables import ALEMBIC_VERSION_TABLE, PREFIX, metadata


@pytest.fixture
def empty_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_engine_from_url(empty_database_url)
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
            text("SELECT type, external_id, parent_pk FROM secret_scopes")
        ).all()
    assert [tuple(row) for row in rows] == [("global", "global", None)]


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
