"""`/api/v1/events/stream` (Server-Sent Events) and `/api/v1/events` (long polling): the change
events the caller may see, as they commit, in any process (`core.changes`).

A stream holds one server thread for as long as it is open (the server is WSGI with blocking
threads). Streams have threads of their own: `secretctl serve` gives each process
`[events] max_streams` threads beside its `threads` for other requests (granian starts them as
they are needed and ends them when idle; a waiting stream costs its stack and no CPU), and
`entrypoints.http.admission` keeps every other request to `threads` at a time, so open streams
never take the threads of other requests. Beyond `max_streams` streams and long polls a process
answers 503 `too_many_streams`. The events come from ONE poller thread per process, which reads
the database every `[events] poll_seconds`; each stream sends `: keepalive` every
`[events] keepalive_seconds` (15) and ends after `max_seconds` if asked (EventSource reconnects
with `Last-Event-ID` by itself).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from flask import Flask, Response, current_app, g, request
from flask.views import MethodView

from adapters.db.change_events import SqlChangeSource
from core.changes import ChangeHub, ChangeStream, StreamFilter
from core.domain.changes import ChangeRecord
from core.domain.errors import InvalidInput, NotFound, ServiceError, TooManyStreams
from core.domain.values import Principal
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.schemas.stream import (
    ChangeEventPageSchema,
    PollArgsSchema,
    StreamArgsSchema,
)
from entrypoints.http.secrets import scope_ref

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"

blp = Blueprint(
    "stream",
    __name__,
    url_prefix="/api/v1/events",
    description="Change events pushed to consumers: Server-Sent Events and long polling.",
)

EXAMPLE_EVENT: dict[str, Any] = {
    "id": 42,
    "type": "secret.rotated",
    "time": "2026-12-05T01:40:03.000224+00:00",
    "secret": {
        "id": "8583a0be-5780-4caa-a4f9-c245455866fa",
        "scope": {"type": "project", "id": "p-42"},
        "name": "OPENAI_API_KEY",
        "environment": "production",
        "reference": "secret://project/p-42/OPENAI_API_KEY?env=production",
    },
    "version": 3,
}
EXAMPLE_STREAM = (
    "retry: 2000\n\n"
    f"id: 42\nevent: secret.rotated\ndata: {json.dumps(EXAMPLE_EVENT, separators=(',', ':'))}\n\n"
    ": keepalive\n\n"
)
STREAMED = (
    "Server-Sent Events, one per change the caller may list (checked at delivery): `id:` the "
    "cursor, `event:` the type, `data:` the event as one line of JSON (never a value); a "
    "`: keepalive` comment every 15 s. Resume with `Last-Event-ID` or `after`."
)


class Slots:
    """How many streams and long polls this process may hold at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self._held >= self._limit:
                raise TooManyStreams(
                    f"this server holds {self._limit} change streams already; try again later",
                    details={"max_streams": self._limit},
                )
            self._held += 1

    def give_back(self) -> None:
        with self._lock:
            self._held -= 1

    @property
    def held(self) -> int:
        return self._held


class Streaming:
    """The process's hub, its use case and its slots (built on first use, one per app)."""

    def __init__(self, app: Flask) -> None:
        container = app.extensions["container"]
        settings = container.settings().events
        self.keepalive = float(settings["keepalive_seconds"])
        self.slots = Slots(int(settings["max_streams"]))
        self.hub = ChangeHub(
            SqlChangeSource(container.engine()), poll_seconds=float(settings["poll_seconds"])
        )
        self.stream = ChangeStream(self.hub, container.unit_of_work, container.clock())


_building = threading.Lock()


def streaming() -> Streaming:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _building:
        if "change_stream" not in app.extensions:
            app.extensions["change_stream"] = Streaming(app)
    built: Streaming = app.extensions["change_stream"]
    return built


def subscription(principal: Principal, args: dict[str, Any]) -> tuple[int, StreamFilter]:
    """Where to start and what to show, from the query (and `Last-Event-ID`)."""
    scope = None
    if "scope_type" in args:
        scope = scope_ref(args["scope_type"], args.get("scope_id"))
    elif "scope_id" in args:
        raise InvalidInput("scope_id needs scope_type", details={"field": "scope_type"})
    secret: UUID | None = args.get("secret")
    after = request.headers.get("Last-Event-ID") or args.get("after")
    state = streaming()
    wanted = state.stream.filter_for(principal, scope, secret)
    return state.stream.start(principal, after), wanted


def sse(record: ChangeRecord) -> str:
    data = json.dumps(record.payload(), separators=(",", ":"))
    return f"id: {record.id}\nevent: {record.type}\ndata: {data}\n\n"


@blp.route("/stream")
class EventStream(MethodView):
    @blp.arguments(StreamArgsSchema(), location="query")
    @blp.response(
        200,
        {"type": "string"},
        content_type=EVENT_STREAM,
        description=STREAMED,
        example=EXAMPLE_STREAM,
    )
    @raises(NotFound, TooManyStreams)
    @operation_id("stream_events")
    def get(self, args: dict[str, Any]) -> Any:
        """Stream the change events the caller may see (Server-Sent Events).

        Every change to a secret the caller may list (created, new version, rotated, deleted,
        restored, purged, expiring...) arrives as it commits, in whichever server process it
        was made; never a value. A `Last-Event-ID` header or `after` resumes after a cursor
        (events are kept at least 24 h). A filter by scope (and below) or secret narrows it;
        a scope the caller cannot see is 404. Each server process holds at most
        `[events] max_streams` streams (503 beyond)."""
        principal: Principal = g.principal
        position, wanted = subscription(principal, args)
        state = streaming()
        state.slots.take()
        seconds = args.get("max_seconds")
        events = stream_events(state, principal, position, wanted, seconds)
        response = Response(events, mimetype=EVENT_STREAM)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
        released = threading.Event()

        def give_back() -> None:
            if not released.is_set():
                released.set()
                state.slots.give_back()

        response.call_on_close(give_back)
        return response


def stream_events(
    state: Streaming,
    principal: Principal,
    position: int,
    wanted: StreamFilter,
    max_seconds: int | None,
) -> Iterator[str]:
    deadline = time.monotonic() + max_seconds if max_seconds else math.inf
    yield "retry: 2000\n\n"  # the headers leave now; EventSource waits 2 s to reconnect
    next_keepalive = time.monotonic() + state.keepalive
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        timeout = max(0.0, min(next_keepalive, deadline) - now)
        try:
            records, position = state.stream.next_batch(principal, position, wanted, timeout)
        except ServiceError as error:  # e.g. the caller's token was revoked: the stream ends
            log.info("change stream ended: %s", error.code)
            return
        except Exception as error:  # the database went away: the client reconnects later
            log.warning("change stream ended: %s", type(error).__name__)
            return
        for record in records:
            yield sse(record)
        if time.monotonic() >= next_keepalive:
            yield ": keepalive\n\n"
            next_keepalive = time.monotonic() + state.keepalive


@blp.route("")
class EventPoll(MethodView):
    @blp.arguments(PollArgsSchema(), location="query")
    @blp.response(
        200,
        ChangeEventPageSchema,
        example={"items": [EXAMPLE_EVENT], "next": 42},
    )
    @raises(NotFound, TooManyStreams)
    @operation_id("poll_events")
    def get(self, args: dict[str, Any]) -> Any:
        """Long polling: the change events after a cursor that the caller may see.

        The same events as the stream (`/api/v1/events/stream`), for clients without
        Server-Sent Events: waits up to `wait` seconds (at most 60) for the first event, then
        answers the events after `after` (`now` by default: none, and the head as `next`) and
        the cursor to ask from next time."""
        principal: Principal = g.principal
        position, wanted = subscription(principal, args)
        state = streaming()
        state.slots.take()
        try:
            records, position = state.stream.next_batch(
                principal, position, wanted, float(args["wait"]), fresh=True
            )
        finally:
            state.slots.give_back()
        return {"items": [record.payload() for record in records], "next": position}
