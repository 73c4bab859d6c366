"""Whether anyone can still sign in without an identity provider: the API tokens that work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, or_, select

from adapters.db.tables import api_tokens


def usable_api_tokens(engine: Engine, now: datetime) -> int:
    """API tokens neither revoked nor expired at `now`."""
    query = (
        select(func.count())
        .select_from(api_tokens)
        .where(api_tokens.c.revoked_at.is_(None))
        .where(or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now))
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
