"""`Admission`: other requests run `threads` at a time; change streams and long polls apart."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from entrypoints.http.admission import Admission
from entrypoints.server import worker_app


class Blocking:
    """A WSGI app whose requests wait until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(10)
        with self._lock:
            self.running -= 1
        return [b"ok"]


def call(app: Admission, path: str) -> threading.Thread:
    thread = threading.Thread(target=app, args=({"PATH_INFO": path}, None), daemon=True)
    thread.start()
    return thread


def settle(inner: Blocking, count: int) -> None:
    deadline = time.monotonic() + 5
    while inner.running < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # long enough for one more to start, if the gate let it


def test_other_requests_run_at_most_threads_at_a_time() -> None:
    inner = Blocking()
    gate = Admission(inner, threads=2)
    threads = [call(gate, "/api/v1/secrets") for _ in range(5)]
    settle(inner, 2)
    assert inner.running == 2
    inner.release.set()
    for thread in threads:
        thread.join(5)
    assert inner.most == 2 and inner.running == 0


def test_streams_and_long_polls_do_not_take_a_turn() -> None:
    inner = Blocking()
    gate = Admission(inner, threads=1)
    waiting = [call(gate, "/api/v1/events/stream") for _ in range(3)]
    waiting.append(call(gate, "/api/v1/events"))
    settle(inner, 4)
    request = call(gate, "/api/v1/secrets")  # its turn is free: the four above hold none
    settle(inner, 5)
    assert inner.running == 5
    inner.release.set()
    for thread in [*waiting, request]:
        thread.join(5)


def test_a_turn_is_given_back_when_the_app_raises() -> None:
    calls = []

    def failing_three_times(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        if len(calls) <= 3:
            raise RuntimeError("boom")
        return [b"ok"]

    gate = Admission(failing_three_times, threads=1)
    for _ in range(3):
        try:
            gate({"PATH_INFO": "/api/v1/secrets"}, None)
        except RuntimeError:
            pass
    answered: list[Any] = []
    fourth = threading.Thread(
        target=lambda: answered.append(gate({"PATH_INFO": "/healthz"}, None)), daemon=True
    )
    fourth.start()
    fourth.join(5)  # a turn kept by a failed request would make it wait forever
    assert answered == [[b"ok"]]


def test_each_served_worker_app_is_behind_the_gate(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRETS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRETS_THREADS", "3")
    monkeypatch.setattr("entrypoints.memory.start_trimming", lambda: None)
    monkeypatch.setattr("entrypoints.memory.limit_malloc_arenas", lambda: None)
    monkeypatch.setattr("entrypoints.server.configure_logging", lambda *_: None)
    app = worker_app()
    try:
        assert isinstance(app.wsgi_app, Admission) and app.wsgi_app.threads == 3
    finally:
        app.extensions["container"].shutdown_resources()


def test_only_the_stream_and_the_long_poll_skip_the_gate() -> None:
    inner = Blocking()
    gate = Admission(inner, threads=1)
    first = call(gate, "/api/v1/events/streamX")  # not the stream: takes the one turn
    settle(inner, 1)
    others = [call(gate, path) for path in ("/api/v1/eventsX", "/api/v1/events/stream/x")]
    settle(inner, 2)
    assert inner.running == 1  # both wait for the turn
    inner.release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert inner.most == 1
