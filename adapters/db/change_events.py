"""The change stream's log on SQLAlchemy Core (`ports.changes.ChangeSource`).

Rows are written by `SqlOutboxRepository.record_change` in the transaction of their change; the
stream's poller reads them here, in the order of their cursor (`id`), each read a short
autocommit query on a connection of its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, func, insert, select

from adapters.db.tables import change_events
from core.domain.changes import ChangeRecord
from core.domain.values import ScopeRef, ScopeType
from ports.changes import ChangeSource

# Built once (`SqlOutboxRepository.record_change`, on every change): no per-call compiling.
INSERT_CHANGE = insert(change_events)


def change_values(change: ChangeRecord) -> dict[str, Any]:
    """The row of a change (its `id` is the database's to give)."""
    return {
        "type": change.type,
        "secret_id": change.secret_id,
        "scope_type": None if change.scope is None else change.scope.type.value,
        "scope_id": None if change.scope is None else change.scope.id,
        "scope_path": change.scope_path,
        "name": change.name,
        "environment": change.environment,
        "version": change.version,
        "created_at": change.time,
    }


def change_from_row(row: Row[Any]) -> ChangeRecord:
    scope = None
    if row.scope_type is not None and row.scope_id is not None:
        scope = ScopeRef(ScopeType(row.scope_type), row.scope_id)
    return ChangeRecord(
        id=int(row.id),
        type=row.type,
        secret_id=row.secret_id,
        time=row.created_at,
        scope=scope,
        scope_path=row.scope_path,
        name=row.name,
        environment=row.environment,
        version=row.version,
    )


class SqlChangeSource(ChangeSource):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def head(self) -> int:
        with self._engine.connect() as connection:
            value = connection.execute(select(func.max(change_events.c.id))).scalar()
        return int(value or 0)

    def after(self, cursor: int, limit: int, upto: int | None = None) -> list[ChangeRecord]:
        query = select(change_events).where(change_events.c.id > cursor)
        if upto is not None:
            query = query.where(change_events.c.id <= upto)
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(change_events.c.id).limit(limit)).all()
        return [change_from_row(row) for row in rows]
