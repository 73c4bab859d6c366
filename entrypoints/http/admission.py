"""At most `threads` requests of a process run at once; change streams and long polls apart.

`secretctl serve` gives each process `threads` + `[events] max_streams` server threads (granian
starts them as they are needed): the second part exists so that open change streams, which hold
their thread for as long as they are open, never take a thread from the other requests. This
gate keeps the other requests to `threads` at a time, as many as before the stream threads
existed: past it a request waits for a turn (in its thread, costing no CPU) instead of adding
contention for the interpreter and the database pool. Streams are counted by their own slots
(`entrypoints.http.stream.Slots`, 503 `too_many_streams` beyond `max_streams`). It wraps the
app of each of `secretctl serve`'s workers (`entrypoints.server.worker_app`), outermost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The change stream and the long poll: they wait, not work. Exactly these paths (a prefix would
# let any request under it, a 404 included, skip the gate).
WAITING_PATHS = frozenset({"/api/v1/events", "/api/v1/events/stream"})


class Admission:
    """WSGI middleware: a request that is not a stream or long poll takes one of `threads`
    turns for as long as the application runs it (a response body the server iterates later,
    such as an export's, is produced outside the turn)."""

    def __init__(self, app: WSGIApplication, threads: int) -> None:
        self._app = app
        self.threads = threads
        self._turns = threading.BoundedSemaphore(threads)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[Any]:
        path: str = environ.get("PATH_INFO", "")
        if path in WAITING_PATHS:
            return self._app(environ, start_response)
        with self._turns:
            return self._app(environ, start_response)
