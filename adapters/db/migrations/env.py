"""Alembic environment of the service's `secret_*` tables, run online through `migrate.py`.

The caller passes an open connection in `config.attributes["connection"]`; nothing here
connects by itself, and nothing outside `secret_*` is ever compared or changed.
"""

from __future__ import annotations

from alembic import context

from adapters.db.migrate import include_name
from adapters.db.tables import ALEMBIC_VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "migrations run through adapters.db.migrate.upgrade(engine), which passes a connection"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=ALEMBIC_VERSION_TABLE,
    include_name=include_name,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
