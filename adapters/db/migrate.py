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
from sqlalchemy import Engine

from adapters.db.tables import ALEMBIC_VERSION_TABLE, PREFIX

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: of the tables in the database, only ours exist for it."""
    return type_ != "table" or (name or "").startswith(PREFIX)


def upgrade(engine: Engine) -> None:
    """Apply every migration not applied yet, in one transaction."""
    with engine.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


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


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
