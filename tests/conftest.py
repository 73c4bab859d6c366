"""Shared fixtures: a throwaway PostgreSQL server and freshly migrated databases on it and SQLite.

Set `SECRETS_TEST_DATABASE_URL` to a PostgreSQL server URL (a role that may create databases)
to use that server instead of starting one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, Table, delete, make_url, text, update

from adapters.db.engine import create_engine_from_url
from adapters.db.migrate import upgrade
from adapters.db.tables import ALEMBIC_VERSION_TABLE, PREFIX, audit_head, scopes
from core.audit_chain import GENESIS
from core.domain.values import ScopeType
from tests.support.postgres import PostgresUnavailable, throwaway_postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Base URL of a PostgreSQL server, superuser `postgres`, database `postgres`."""
    external = os.environ.get("SECRETS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailable as error:
        pytest.exit(str(error), returncode=1)


@pytest.fixture(scope="session")
def _postgres_admin(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine_from_url(postgres_url).execution_options(isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@dataclass
class _PostgresTestDatabase:
    """One migrated database per session, emptied before each test.

    On tables this small DELETE takes about 1 ms, TRUNCATE 15 ms and a copy of a template
    database 75 ms. The row the migrations seed, the global scope, stays.
    """

    url: str
    engine: Engine
    tables: list[Table]  # referencing tables first

    def reset(self) -> None:
        with self.engine.begin() as connection:
            # A test that leaked an open transaction makes this fail instead of hang.
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            for table in self.tables:
                statement = delete(table)
                if table.name == scopes.name:
                    statement = statement.where(table.c.type != ScopeType.GLOBAL.value)
                if table.name == audit_head.name:  # the chain's head row, as migrated
                    statement = update(table).values(seq=0, hash=GENESIS)
                connection.execute(statement)


@pytest.fixture(scope="session")
def _postgres_test_database(_postgres_admin: Engine) -> Iterator[_PostgresTestDatabase]:
    with _postgres_database(_postgres_admin) as url:
        engine = create_engine_from_url(url)
        upgrade(engine)
        schema = MetaData()
        schema.reflect(engine, only=_holds_test_data)
        yield _PostgresTestDatabase(url, engine, list(reversed(schema.sorted_tables)))
        engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "secrets.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database with no tables at all, for testing the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'secrets.db'}"
        return
    with _postgres_database(request.getfixturevalue("_postgres_admin")) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a freshly migrated database holding nothing but the global scope."""
    if request.param == "sqlite":
        path = tmp_path / "secrets.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    database = request.getfixturevalue("_postgres_test_database")
    database.reset()
    yield database.url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_from_url(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(_postgres_test_database: _PostgresTestDatabase) -> Iterator[Engine]:
    """A freshly reset PostgreSQL database, for what only PostgreSQL has (mark the test
    `postgres`)."""
    _postgres_test_database.reset()
    engine = create_engine_from_url(_postgres_test_database.url)
    yield engine
    engine.dispose()


@contextmanager
def _postgres_database(admin: Engine) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"secret_test_{uuid.uuid4().hex}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(admin.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def _holds_test_data(table_name: str, metadata: MetaData) -> bool:
    return table_name.startswith(PREFIX) and table_name != ALEMBIC_VERSION_TABLE


def _migrate(url: str) -> None:
    engine = create_engine_from_url(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
