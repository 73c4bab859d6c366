"""Records which key-encryption-key versions exist (ids and states, never key bytes)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from adapters.db.tables import keys
from ports.security import KeyProvider


def record_active_key(engine: Engine, provider: KeyProvider) -> str:
    """Mark the provider's active key as `active` and every other known key as `retired`."""
    key_id = provider.active_key().id
    with engine.begin() as connection:
        known = connection.execute(select(keys.c.id).where(keys.c.id == key_id)).first()
        if known is None:
            try:
                with connection.begin_nested():
                    connection.execute(
                        keys.insert().values(
                            id=key_id,
                            provider=provider.name,
                            state="active",
                            created_at=datetime.now(UTC),
                        )
                    )
            except IntegrityError:  # another process recorded it first
                pass
        connection.execute(
            update(keys)
            .where(keys.c.id != key_id, keys.c.state == "active")
            .values(state="retired")
        )
        connection.execute(update(keys).where(keys.c.id == key_id).values(state="active"))
    return key_id
