"""The re-key job's SQL: envelope blobs taken in id order, a batch at a time, locked with
`FOR UPDATE SKIP LOCKED` on PostgreSQL so concurrent runs share the work."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Connection, bindparam, func, select, update

from adapters.db.key_registry import SqlKeyRegistry
from adapters.db.tables import encrypted_values
from adapters.db.uow import SqlUnitOfWork
from core.domain.keys import StoredBlob
from ports.keys import BlobRepository, KeyUnitOfWork

REPLACE_BLOB = (
    update(encrypted_values)
    .where(encrypted_values.c.id == bindparam("match_id"))
    .values(key_id=bindparam("new_key_id"), blob=bindparam("new_blob"))
)


class SqlBlobRepository(BlobRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def outdated(self, active_key_id: str, after: UUID | None, limit: int) -> list[StoredBlob]:
        columns = encrypted_values.c
        statement = select(columns.id, columns.key_id, columns.blob).where(
            columns.key_id != active_key_id
        )
        if after is not None:
            statement = statement.where(columns.id > after)
        # SQLite has no row locks (nor FOR UPDATE): there one writer at a time is the rule.
        statement = statement.order_by(columns.id).limit(limit).with_for_update(skip_locked=True)
        return [
            StoredBlob(row.id, row.key_id, row.blob) for row in self._connection.execute(statement)
        ]

    def replace(self, blobs: Sequence[StoredBlob]) -> None:
        if blobs:
            self._connection.execute(
                REPLACE_BLOB,
                [{"match_id": b.id, "new_key_id": b.key_id, "new_blob": b.blob} for b in blobs],
            )

    def count_by_key(self) -> dict[str, int]:
        rows = self._connection.execute(
            select(encrypted_values.c.key_id, func.count()).group_by(encrypted_values.c.key_id)
        )
        return {key_id: int(count) for key_id, count in rows}


class SqlKeyUnitOfWork(SqlUnitOfWork, KeyUnitOfWork):
    """The unit of work, with the blobs and the key registry on the same transaction."""

    def __enter__(self) -> SqlKeyUnitOfWork:
        super().__enter__()
        connection = self._active_connection()
        self.blobs = SqlBlobRepository(connection)
        self.keys = SqlKeyRegistry(connection)
        return self
