"""PostgreSQL's one-round-trip append of a batch of audit events (`ChainAppender`): one call of
the `secret_audit_append` function (migration 0007) on a connection in autocommit mode, so the
statement is its own transaction and has committed, durably, when its row comes back.

The appender keeps one connection of its own, outside the pool: a process's group commit has
one writer at a time, and the pool's checkout and return would cost more than the call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from adapters.db.audit_repository import write_error
from core.domain.audit import AppendedBatch, Checkpoint
from ports.repositories.audit import ChainAppender

# The contents as one text, a line each (canonical JSON is one ASCII line: a newline inside a
# string is written `\\n`), and the required generations comma-separated (empty: none): the
# server splits them, cheaper than the driver's dumping of arrays.
APPEND_CALL = (
    "SELECT * FROM secret_audit_append("
    "string_to_array(%s, E'\\n'), string_to_array(%s, ',', '')::bigint[], %s)"
)


INSERT_CHECKPOINT = (
    "INSERT INTO secret_audit_checkpoints (seq, hash, mac, created_at) VALUES (%s, %s, %s, %s)"
)


def _texts(contents: Sequence[str], required_generations: Sequence[int | None]) -> tuple[str, str]:
    lines = "\n".join(contents)
    if lines.count("\n") != len(contents) - 1:  # not canonical JSON
        raise ValueError("an event's canonical content holds a newline")
    return lines, ",".join("" if g is None else str(g) for g in required_generations)


def _appended(row: Any) -> AppendedBatch:
    generation, head_seq, head_hash, written = row
    return AppendedBatch(int(head_seq), str(head_hash), int(generation), bool(written))


class PostgresChainAppender(ChainAppender):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._driver: Any = None  # the psycopg connection, in autocommit mode

    def append_committed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        checkpoint_every: int,
    ) -> AppendedBatch:
        parameters = (*_texts(contents, required_generations), checkpoint_every)
        with self._lock, self._unavailable_on_error():
            with self._connection().cursor() as cursor:
                cursor.execute(APPEND_CALL, parameters)
                return _appended(cursor.fetchone())

    def append_signed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        sign: Callable[[AppendedBatch], Sequence[Checkpoint]],
    ) -> AppendedBatch:
        # Two round trips: BEGIN and the append (no checkpoint refused: 0), then the signed
        # checkpoints and COMMIT. A failure closes the connection: the server rolls back.
        parameters = (*_texts(contents, required_generations), 0)
        with self._lock, self._unavailable_on_error():
            driver = self._connection()
            with driver.pipeline(), driver.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(APPEND_CALL, parameters)
                appended = _appended(cursor.fetchone())
            checkpoints = sign(appended)
            with driver.pipeline(), driver.cursor() as cursor:
                if checkpoints:
                    cursor.executemany(
                        INSERT_CHECKPOINT,
                        [(c.seq, c.hash, c.mac, c.created_at) for c in checkpoints],
                    )
                cursor.execute("COMMIT")
            return appended

    @contextmanager
    def _unavailable_on_error(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:  # the driver's, the pool's or `sign`'s: nothing is written
            self._close()  # its state is unknown (a transaction may be open): connect anew
            raise write_error(error, self._engine.dialect.dbapi) from None

    def _connection(self) -> Any:
        if self._driver is None or self._driver.closed:
            pooled = self._engine.raw_connection()  # connected as the engine connects
            driver = pooled.driver_connection
            assert driver is not None
            pooled.detach()  # this appender's own from now on
            driver.autocommit = True
            self._driver = driver
        return self._driver

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            try:
                driver.close()
            except Exception:  # noqa: S110 - a broken connection is being thrown away
                pass

    def __repr__(self) -> str:
        return "PostgresChainAppender()"
