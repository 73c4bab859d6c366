"""The statements a piece of work runs through an engine: each statement object executed, with
the SQL it was sent as (for tests that a hot path builds its statements once)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event


def recorded(engine: Engine, work: Callable[[], object]) -> list[tuple[object, str]]:
    """The statements `work` runs on `engine`: (the statement object executed, its SQL)."""
    seen: list[list[Any]] = []

    def executed(conn: Any, clause: Any, *rest: Any) -> None:
        seen.append([clause, ""])

    def sent(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if seen and not seen[-1][1]:
            seen[-1][1] = " ".join(statement.split())

    event.listen(engine, "before_execute", executed)
    event.listen(engine, "before_cursor_execute", sent)
    try:
        work()
    finally:
        event.remove(engine, "before_execute", executed)
        event.remove(engine, "before_cursor_execute", sent)
    return [(clause, sql) for clause, sql in seen]
