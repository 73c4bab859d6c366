"""`secretctl run --watch`'s reading of the change stream (issue #18): which events make it look
at its secrets, and what it keeps of a Server-Sent Events answer (the cursor to resume from,
the reconnection delay). The whole run against a live server is in
tests/e2e/test_cli_run_watch_stream.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from entrypoints.client import Client
from entrypoints.run_environment import Query
from entrypoints.run_watch import ChangeFeed


def feed(**query: Any) -> ChangeFeed:
    made = ChangeFeed(Client("http://127.0.0.1:9", "a-token"), Query(**query), 10.0)
    made.names = frozenset({"API_TOKEN"})
    return made


def event(name: str | None, environment: str | None = None, kind: str = "secret.updated") -> Any:
    return {"type": kind, "secret": {"name": name, "environment": environment}}


@pytest.mark.parametrize(
    ("query", "seen", "touches"),
    [
        ({"context": {}}, event("API_TOKEN"), True),  # a name it resolved
        ({"context": {}}, event("NEW_NAME"), True),  # a name a new secret could add
        ({"context": {}}, event(None, kind="secret.purged"), True),  # names nothing: look
        ({"context": {}}, event("API_TOKEN", kind="secret.expiring"), False),
        ({"context": {}}, event("API_TOKEN", kind="secret.rotation_failed"), False),
        ({"context": {}, "names": ("API_TOKEN",)}, event("OTHER"), False),
        ({"context": {}, "names": ("API_TOKEN", "LATER")}, event("LATER"), True),
        ({"context": {}, "prefix": "STRIPE_"}, event("OTHER"), False),
        ({"context": {}, "prefix": "STRIPE_"}, event("STRIPE_KEY"), True),
        ({"context": {"environment": "prod"}}, event("NEW", "staging"), False),
        ({"context": {"environment": "prod"}}, event("NEW", "prod"), True),
        ({"context": {"environment": "prod"}}, event("NEW"), True),
        ({"context": {}}, event("NEW", "prod"), False),  # no --env: only agnostic secrets
    ],
)
def test_an_event_makes_the_run_look_only_when_it_may_change_its_secrets(
    query: dict[str, Any], seen: Any, touches: bool
) -> None:
    assert feed(**query).touches(seen) is touches


class Answer:
    """A Server-Sent Events answer, line by line as requests gives them."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")

    def iter_lines(self, chunk_size: int | None = None) -> Iterator[bytes]:
        assert chunk_size is None  # each piece as it arrives
        return iter(line.encode() for line in self.lines)


def sse(cursor: int, name: str) -> str:
    data = json.dumps({"id": cursor, "type": "secret.updated", "secret": {"name": name}})
    return f"id: {cursor}\nevent: secret.updated\ndata: {data}\n\n"


def test_the_stream_moves_the_cursor_on_and_flags_only_events_that_touch() -> None:
    following = feed(context={}, names=("API_TOKEN",))
    following._read(Answer(f"retry: 3500\n\n{sse(7, 'OTHER')}: keepalive\n\n"))  # type: ignore[arg-type]
    assert (following.cursor, following.retry, following.touched.is_set()) == ("7", 3.5, False)
    following._read(Answer(sse(8, "API_TOKEN") + sse(9, "OTHER")))  # type: ignore[arg-type]
    assert (following.cursor, following.touched.is_set()) == ("9", True)


def test_an_event_that_cannot_be_read_makes_the_run_look() -> None:
    following = feed(context={}, names=("API_TOKEN",))
    following._read(Answer("id: 4\ndata: {not json\n\n"))  # type: ignore[arg-type]
    assert (following.cursor, following.touched.is_set()) == ("4", True)
