"""`secretctl run --watch` follows the change stream (issue #18) against a live `secretctl
serve`: a new version of a secret the command resolved restarts it with the new value within
seconds (the poll interval being a minute), a write to a name it does not use neither restarts
it nor makes it look; a server whose stream is unavailable is polled, and stderr says so."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli_run import (
    Project,
    child,
    kill_group,
    runs,
    server,
    started,
    wait_for,
)
from tests.e2e.test_serve import Server, free_port, running_server, serve_env

__all__ = ["server"]


def resolves(server: Server) -> int:
    """How many resolutions the server answered so far (its access log)."""
    return server.output().count("GET /api/v1/resolve")


def test_watch_follows_the_stream_and_restarts_only_for_its_own_names(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server, "stream")
    token = project.put("API_TOKEN", "first-token-value")
    other = project.put("OTHER_NAME", "other-1")
    report = tmp_path / "report.jsonl"
    args = project.run_args(
        "--watch",
        "--watch-interval",
        "60",  # a poll cannot be what restarts it
        "--only",
        "API_TOKEN",
        "--",
        *child(report, "sleep", "API_TOKEN", "OTHER_NAME"),
    )
    process = started(server, args)
    try:
        wait_for(lambda: len(runs(report)) == 1, "the first start")
        wait_for(lambda: "GET /api/v1/events/stream" in server.output(), "the stream")
        looked = resolves(server)
        project.new_version(other, "other-2")  # a name it does not use: no look, no restart
        time.sleep(2.5)
        assert len(runs(report)) == 1
        assert resolves(server) == looked
        written = time.monotonic()
        project.new_version(token, "second-token-value")
        wait_for(lambda: len(runs(report)) == 2, "a restart after the new version", 10)
        assert time.monotonic() - written < 5
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        _, stderr = process.communicate()
    finally:
        kill_group(process)

    assert [seen["API_TOKEN"] for seen in runs(report)] == [
        "first-token-value",
        "second-token-value",
    ]
    assert all(seen["OTHER_NAME"] is None for seen in runs(report))
    assert code == 128 + signal.SIGTERM
    assert "secrets changed: restarting the command" in stderr
    assert "unavailable" not in stderr  # it followed the stream throughout
    assert "token-value" not in stderr and "other-" not in stderr


@pytest.fixture
def streamless(tmp_path: Path) -> Iterator[Server]:
    """A server that holds no change stream (every one is 503 too_many_streams)."""
    env = serve_env(
        tmp_path / "data", free_port(), SECRETS_LOG_LEVEL="INFO", SECRETS_EVENTS__MAX_STREAMS="0"
    )
    with running_server(env, tmp_path) as started_server:
        yield started_server


def test_watch_polls_and_says_so_when_the_stream_is_unavailable(
    streamless: Server, tmp_path: Path
) -> None:
    project = Project(streamless, "polled")
    token = project.put("API_TOKEN", "first-token-value")
    report = tmp_path / "report.jsonl"
    args = project.run_args(
        "--watch", "--watch-interval", "1", "--", *child(report, "sleep", "API_TOKEN")
    )
    process = started(streamless, args)
    try:
        wait_for(lambda: len(runs(report)) == 1, "the first start")
        project.new_version(token, "second-token-value")
        wait_for(lambda: len(runs(report)) == 2, "a restart found by polling", 10)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        _, stderr = process.communicate()
    finally:
        kill_group(process)

    assert [seen["API_TOKEN"] for seen in runs(report)] == [
        "first-token-value",
        "second-token-value",
    ]
    assert (
        "the change stream is unavailable (HTTP 503): watching by polling every 1 s until it "
        "is back"
    ) in stderr
    assert stderr.count("the change stream is unavailable") == 1  # said once, not per retry
    assert "token-value" not in stderr


class Cuttable:
    """A TCP relay to the server whose connections the test can cut (each one closed, new ones
    closed at once) and restore: a network that drops and comes back."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        self.cut_off = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off = True
        with self.lock:
            for end in self.open:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.open = []

    def restore(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_watch_resumes_the_stream_after_the_connection_drops(
    server: Server, tmp_path: Path
) -> None:
    project = Project(server, "dropped")
    token = project.put("API_TOKEN", "first-token-value")
    report = tmp_path / "report.jsonl"
    relay = Cuttable(server.addr)
    args = project.run_args(
        "--watch", "--watch-interval", "60", "--", *child(report, "sleep", "API_TOKEN")
    )
    process = subprocess.Popen(
        args,
        env=server.env() | {"SECRETS_ADDR": relay.addr},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(runs(report)) == 1, "the first start")
        wait_for(lambda: "GET /api/v1/events/stream" in server.output(), "the stream")
        relay.cut()
        time.sleep(1.5)
        project.new_version(token, "second-token-value")  # while it cannot hear of it
        time.sleep(1)
        assert len(runs(report)) == 1
        relay.restore()
        wait_for(lambda: len(runs(report)) == 2, "a restart once the stream is back", 30)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        _, stderr = process.communicate()
    finally:
        kill_group(process)
        relay.close()

    assert [seen["API_TOKEN"] for seen in runs(report)] == [
        "first-token-value",
        "second-token-value",
    ]
    assert "the change stream is unavailable (no answer)" in stderr
    assert "following the change stream again" in stderr
    assert "token-value" not in stderr


def test_watch_poll_polls_without_the_stream(server: Server, tmp_path: Path) -> None:
    project = Project(server, "poll")
    token = project.put("API_TOKEN", "first-token-value")
    report = tmp_path / "report.jsonl"
    streams = server.output().count("GET /api/v1/events")
    args = project.run_args(
        "--watch", "--poll", "--watch-interval", "1", "--", *child(report, "sleep", "API_TOKEN")
    )
    process = started(server, args)
    try:
        wait_for(lambda: len(runs(report)) == 1, "the first start")
        project.new_version(token, "second-token-value")
        wait_for(lambda: len(runs(report)) == 2, "a restart found by polling", 10)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        _, stderr = process.communicate()
    finally:
        kill_group(process)

    assert runs(report)[-1]["API_TOKEN"] == "second-token-value"
    assert server.output().count("GET /api/v1/events") == streams  # neither stream nor feed
    assert "change stream" not in stderr
