"""The SQLAlchemy engine for a database URL: PostgreSQL through psycopg 3, or a SQLite file."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text, update
from sqlalchemy.engine import URL, make_url

from adapters.db.errors import database_errors
from adapters.db.tables import (
    api_tokens,
    audit_head,
    role_bindings,
    scopes,
    secrets,
    service_accounts,
    versions,
)

# Schemes that platforms hand out (Heroku-style `postgres://` included) and mean psycopg 3 here.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
PSYCOPG_SCHEME = "postgresql+psycopg://"

# WAL lets readers work during a write; the busy timeout makes a second writer wait, not fail.
# LIKE is case-sensitive, as on PostgreSQL: role bindings' name globs are applied with it.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA case_sensitive_like=ON",
)

# No ping before each checkout (a round trip per request): a connection the server dropped fails
# its request with 503 `database_unavailable`, the pool is invalidated and the next one
# reconnects. Connections are renewed hourly all the same.
POOL_RECYCLE_SECONDS = 3600


# The rows the workers' read caches hold (`core.read_cache`): a transaction that writes to one of
# these tables increments the change generation just before it commits, whoever runs it, and
# every worker's cache then starts afresh.
CACHED_TABLES = frozenset(
    table.name for table in (secrets, versions, scopes, role_bindings, service_accounts, api_tokens)
)
CHANGED = "secret_management.changed_cached_rows"
# Set when the increment was sent with the COMMIT already (`SqlAuditRepository.commit_pending`).
BUMPED = "secret_management.generation_bumped"
# The execution option of a write that changes nothing a cache holds (a token's last use).
KEEPS_CACHES = "keeps_read_caches"
BUMP_GENERATION = (
    update(audit_head).where(audit_head.c.id == 1).values(generation=audit_head.c.generation + 1)
)


def create_engine_from_url(
    url: str, *, track_changes: bool = True, on_change: Callable[[], None] | None = None
) -> Engine:
    """An engine whose logs and errors never show bound parameters (they may be secrets).

    `on_change` is called as a transaction that changed cached rows commits (this process's
    read cache forgets what it holds at once); `track_changes=False` only for a schema older
    than migration 0006 (migration tests)."""
    parsed = make_url(_normalize(url))
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed)
    else:
        engine = create_engine(parsed, hide_parameters=True, pool_recycle=POOL_RECYCLE_SECONDS)
    if track_changes:
        event.listen(engine, "after_cursor_execute", _note_change)
        event.listen(engine, "commit", functools.partial(_bump_generation, on_change=on_change))
        event.listen(engine, "rollback", _forget_change)
    return engine


def ping(engine: Engine) -> None:
    """One round trip to the database; `DatabaseUnavailable` if it cannot be reached."""
    with database_errors(), engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _note_change(
    conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
) -> None:
    if context is None or not (context.isinsert or context.isupdate or context.isdelete):
        return
    if context.execution_options.get(KEEPS_CACHES):
        return
    table = getattr(getattr(context.compiled, "statement", None), "table", None)
    if getattr(table, "name", None) in CACHED_TABLES:
        conn.info[CHANGED] = True


def _bump_generation(conn: Connection, on_change: Callable[[], None] | None = None) -> None:
    if conn.info.pop(CHANGED, False):
        if not conn.info.pop(BUMPED, False):
            conn.execute(BUMP_GENERATION)
        if on_change is not None:
            on_change()


def _forget_change(conn: Connection) -> None:
    conn.info.pop(CHANGED, None)
    conn.info.pop(BUMPED, None)


def _normalize(url: str) -> str:
    for scheme in POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return PSYCOPG_SCHEME + url[len(scheme) :]
    return url


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        _private_file(Path(url.database))
    engine = create_engine(url, hide_parameters=True)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _private_file(path: Path) -> None:
    """The database file exists and only its owner may read it, whatever the umask or the
    directory's mode: SQLite gives its -wal and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
