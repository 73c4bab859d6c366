"""Bring the database schema to the latest revision with Alembic, from code (no alembic.ini).

The migration scripts ship inside this package, so this works from an installed wheel as well
as from the source tree. The PostgreSQL database is shared: Alembic keeps its own version table
(`secret_alembic_version`) and looks at `secret_*` tables only.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from adapters.db.tables import ALEMBIC_VERSION_TABLE, PREFIX

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: of the tables in the database, only ours exist for it."""
    return type_ != "table" or (name or "").startswith(PREFIX)


def upgrade(engine: Engine) -> None:
    """Apply every migration not applied yet, in one transaction."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by copying it and dropping the original, a drop that fails
            # while other rows refer to it. Foreign keys are checked once at the end instead.
            _set_sqlite_foreign_keys(connection, enforced=False)
        try:
            with connection.begin():
                config = _config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite:
                    _check_sqlite_foreign_keys(connection)
        finally:
            if sqlite:
                _set_sqlite_foreign_keys(connection, enforced=True)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None before the first migration."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": ALEMBIC_VERSION_TABLE}
        )
        return context.get_current_revision()


def head_revision() -> str | None:
    """The latest revision the migration scripts define."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _set_sqlite_foreign_keys(connection: Connection, *, enforced: bool) -> None:
    """A no-op inside a transaction, so it runs and is committed on its own."""
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
    connection.commit()


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if violations:
        table, rowid, parent, _ = violations[0]
        raise RuntimeError(
            f"the migration left {len(violations)} broken foreign keys, "
            f"the first in {table} row {rowid} (to {parent})"
        )


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
