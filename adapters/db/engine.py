"""The SQLAlchemy engine for a database URL: PostgreSQL through psycopg 3, or a SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

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


def create_engine_from_url(url: str) -> Engine:
    """An engine whose logs and errors never show bound parameters (they may be secrets)."""
    parsed = make_url(_normalize(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, hide_parameters=True, pool_pre_ping=True)


def _normalize(url: str) -> str:
    for scheme in POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return PSYCOPG_SCHEME + url[len(scheme) :]
    return url


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, hide_parameters=True)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
