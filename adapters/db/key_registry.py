"""Records which key-encryption-key versions exist (ids and states, never key bytes)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from adapters.db.tables import keys
from core.domain.keys import KeyState, KeyVersion
from ports.keys import KeyRegistry
from ports.security import KeyProvider


class SqlKeyRegistry(KeyRegistry):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def versions(self) -> list[KeyVersion]:
        rows = self._connection.execute(select(keys).order_by(keys.c.created_at, keys.c.id))
        return [
            KeyVersion(row.id, row.provider, KeyState(row.state), row.created_at) for row in rows
        ]

    def record_active(self, key_id: str, provider: str, at: datetime) -> None:
        known = self._connection.execute(select(keys.c.id).where(keys.c.id == key_id)).first()
        if known is None:
            try:
                with self._connection.begin_nested():
                    self._connection.execute(
                        keys.insert().values(
                            id=key_id, provider=provider, state=KeyState.ACTIVE, created_at=at
                        )
                    )
            except IntegrityError:  # another process recorded it first
                pass
        self._connection.execute(
            update(keys)
            .where(keys.c.id != key_id, keys.c.state == KeyState.ACTIVE)
            .values(state=KeyState.PREVIOUS)
        )
        self.set_state(key_id, KeyState.ACTIVE)

    def set_state(self, key_id: str, state: KeyState) -> None:
        self._connection.execute(update(keys).where(keys.c.id == key_id).values(state=state))


def record_active_key(engine: Engine, provider: KeyProvider) -> str:
    """Mark the provider's active key as `active` and the one active before as `previous`."""
    key_id = provider.active_key().id
    with engine.begin() as connection:
        SqlKeyRegistry(connection).record_active(key_id, provider.name, datetime.now(UTC))
    return key_id
