"""The database's own exceptions, translated at the adapter's edge: a database that refused or
dropped the connection becomes core's `DatabaseUnavailable` (503 `database_unavailable`); any
other database error is a bug and goes on as it is (500, logged)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from core.domain.errors import DatabaseUnavailable


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached (not what a statement did)."""
    if not isinstance(error, DBAPIError):
        return False
    return bool(error.connection_invalidated) or isinstance(
        error, OperationalError | InterfaceError
    )


def translated(error: BaseException) -> BaseException:
    """`DatabaseUnavailable` for an unreachable database, else `error` itself. The driver's
    message (which may name the user and the host) stays in the cause, not in the answer."""
    return DatabaseUnavailable() if unreachable(error) else error


@contextmanager
def database_errors() -> Iterator[None]:
    """Runs the block, raising `DatabaseUnavailable` where the database cannot be reached."""
    try:
        yield
    except DBAPIError as error:
        replacement = translated(error)
        if replacement is error:
            raise
        raise replacement from error
