"""The change stream over a real `secretctl serve` with two worker processes (issue #18): Server-
Sent Events and long polling, fed from the database (a rotation made by the embedded worker, a
process of its own, reaches the streams held by the HTTP workers), resumed after a disconnect
with `Last-Event-ID`, authorized per event with the bindings of the moment, never a value."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import update

from adapters.db.engine import create_engine_from_url
from adapters.db.tables import rotation_policies
from tests.e2e.test_serve import Server, free_port, running_server, serve_env

VALUE = "s3cr3t-value-never-in-an-event"
NEW_VALUE = "an0ther-value-never-in-an-event"


class Listener:
    """One SSE connection, read by a thread of its own into a queue of events and comments."""

    def __init__(self, addr: str, token: str, last_event_id: str | None = None, **params: Any):
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(
            f"{addr}/api/v1/events/stream",
            params=params,
            headers=headers,
            stream=True,
            timeout=(5, 60),
        )
        self.items: queue.Queue[dict[str, Any]] = queue.Queue()
        self.raw: list[str] = []
        if self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                self.raw.append(line)
                if line == "":
                    if event:
                        self.items.put(event)
                    event = {}
                elif line.startswith(":"):
                    self.items.put({"comment": line[1:].strip()})
                else:
                    key, _, value = line.partition(": ")
                    event[key] = value
        except (requests.RequestException, AttributeError, ValueError, OSError):
            pass  # closed by the test

    def events(self, count: int, within: float = 15.0) -> list[dict[str, Any]]:
        """The next `count` events (comments skipped), data parsed."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + within
        while len(found) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self.items.get(timeout=remaining)
            except queue.Empty:
                break
            if "data" in item:
                found.append({**item, "data": json.loads(item["data"])})
        return found

    def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """The events that arrive within `seconds` (expected: none)."""
        return self.events(1, within=seconds)

    def comment(self, text: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if item.get("comment") == text:
                return True
        return False

    def close(self) -> None:
        self.response.close()


class Api:
    def __init__(self, addr: str, token: str) -> None:
        self.addr = addr
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.addr}/api/v1{path}", headers=self.headers, timeout=70, **kwargs
        )

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.call(method, path, **kwargs)
        assert answer.status_code in (200, 201, 204), answer.text
        return answer.json() if answer.content else None

    def secret(self, name: str, scope: dict[str, str], **body: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.ok(
            "POST", "/secrets", json={"name": name, "value": VALUE, "scope": scope, **body}
        )
        return created

    def account(self, name: str) -> tuple[str, str]:
        """A service account of the global scope and a token of its own: (principal, token)."""
        made = self.ok("POST", "/service-accounts", json={"name": name, "scope": GLOBAL})
        token = self.ok("POST", f"/service-accounts/{made['id']}/tokens", json={})["token"]
        return made["principal"], token

    def grant(self, principal: str, role: str, scope: dict[str, str]) -> str:
        body = {"principal": principal, "role": role, "scope": scope}
        binding_id: str = self.ok("POST", "/role-bindings", json=body)["id"]
        return binding_id


GLOBAL = {"type": "global"}
PROJECT = {"type": "project", "id": "p-stream"}
OTHER = {"type": "project", "id": "p-other"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("stream")
    env = serve_env(
        tmp_path / "data",
        free_port(),
        SECRETS_WORKERS="2",
        SECRETS_WORKER__POLL_SECONDS="0.5",
        SECRETS_EVENTS__POLL_SECONDS="0.2",
        SECRETS_EVENTS__KEEPALIVE_SECONDS="1",
        SECRETS_EVENTS__MAX_STREAMS="10",
        SECRETS_THREADS="16",
        SECRETS_AUTH__FAILURES_PER_MINUTE="0",
    )
    with running_server(env, tmp_path) as started:
        api = Api(started.addr, started.token)
        for kind, scope_id, parent in (
            ("organization", "acme", ("global", "global")),
            ("team", "t-1", ("organization", "acme")),
            ("project", "p-stream", ("team", "t-1")),
            ("project", "p-other", ("team", "t-1")),
        ):
            body = {"type": kind, "id": scope_id, "parent": {"type": parent[0], "id": parent[1]}}
            made = api.call("POST", "/scopes", json=body)
            assert made.status_code == 201, made.text
        yield started


@pytest.fixture
def api(server: Server) -> Api:
    return Api(server.addr, server.token)


def names(events: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(e["event"], e["data"]["secret"]["name"], e["data"]["version"]) for e in events]


def test_streams_on_either_worker_see_changes_made_through_the_other(
    server: Server, api: Api
) -> None:
    # Connections are spread over the two HTTP worker processes by the kernel: with six of
    # each, streams and changes land on both; and the scheduled rotation is made by the
    # embedded worker, a third process, so it can only reach the streams through the database.
    listeners = [Listener(server.addr, server.token) for _ in range(6)]
    try:
        assert all(listener.response.status_code == 200 for listener in listeners)
        assert listeners[0].response.headers["Content-Type"].startswith("text/event-stream")
        secret = api.secret("STREAMED", PROJECT, environment="production")
        for _ in range(5):  # new versions, each request on a new connection
            api.ok("POST", f"/secrets/{secret['id']}/versions", json={"value": NEW_VALUE})
        for listener in listeners:
            got = listener.events(6)
            assert names(got) == [("secret.created", "STREAMED", 1)] + [
                ("secret.updated", "STREAMED", n) for n in range(2, 7)
            ]
            first = got[0]["data"]
            assert first["secret"] == {
                "id": secret["id"],
                "scope": {"type": "project", "id": "p-stream"},
                "name": "STREAMED",
                "environment": "production",
                "reference": "secret://project/p-stream/STREAMED?env=production",
            }
            assert [int(e["id"]) for e in got] == [e["data"]["id"] for e in got]
            assert got == sorted(got, key=lambda e: e["data"]["id"])
        policy = {"rotator": "random", "interval_seconds": 60, "grace_seconds": 0}
        api.ok("PUT", f"/secrets/{secret['id']}/rotation-policy", json=policy)
        engine = create_engine_from_url(f"sqlite:///{server.data_dir / 'secrets.db'}")
        try:
            with engine.begin() as connection:
                connection.execute(
                    update(rotation_policies)
                    .where(rotation_policies.c.secret_id == uuid.UUID(secret["id"]))
                    .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
                )
        finally:
            engine.dispose()
        for listener in listeners:
            [rotated] = listener.events(1, within=30)
            assert rotated["event"] == "secret.rotated" and rotated["data"]["version"] == 7
        for listener in listeners:
            assert VALUE not in "\n".join(listener.raw)
            assert NEW_VALUE not in "\n".join(listener.raw)
    finally:
        for listener in listeners:
            listener.close()


def test_resume_after_a_disconnect_gets_exactly_the_missed_events(server: Server, api: Api) -> None:
    listener = Listener(server.addr, server.token)
    secret = api.secret("RESUMED", PROJECT)
    [created] = listener.events(1)
    listener.close()  # the consumer goes away; three changes happen meanwhile
    for _ in range(3):
        api.ok("POST", f"/secrets/{secret['id']}/versions", json={"value": NEW_VALUE})
    api.ok("DELETE", f"/secrets/{secret['id']}")
    back = Listener(server.addr, server.token, last_event_id=created["id"], secret=secret["id"])
    try:
        missed = back.events(4)
        assert names(missed) == [
            ("secret.updated", "RESUMED", 2),
            ("secret.updated", "RESUMED", 3),
            ("secret.updated", "RESUMED", 4),
            ("secret.deleted", "RESUMED", None),
        ]
        assert back.quiet(1.5) == []  # nothing twice, nothing more
    finally:
        back.close()
    # `?after=` does the same
    again = Listener(server.addr, server.token, after=missed[1]["id"], secret=secret["id"])
    try:
        assert [e["data"]["id"] for e in again.events(2)] == [e["data"]["id"] for e in missed[2:]]
    finally:
        again.close()


def test_a_caller_without_access_sees_nothing_and_a_removed_binding_stops_events(
    server: Server, api: Api
) -> None:
    principal, token = api.account("stream-watcher")
    binding = api.grant(principal, "viewer", PROJECT)
    watcher = Listener(server.addr, token)
    outsider_principal, outsider_token = api.account("stream-outsider")
    outsider = Listener(server.addr, outsider_token)
    try:
        hidden = api.secret("HIDDEN", OTHER)
        shown = api.secret("SHOWN", PROJECT)
        [seen] = watcher.events(1)
        assert seen["data"]["secret"]["id"] == shown["id"]  # not HIDDEN's creation
        assert outsider.quiet(1.5) == []
        api.ok("POST", f"/secrets/{hidden['id']}/versions", json={"value": NEW_VALUE})
        assert watcher.quiet(1.5) == []
        # a scope filter the caller cannot see: 404, as the scope itself would be
        refused = requests.get(
            f"{server.addr}/api/v1/events/stream",
            params={"scope_type": "project", "scope_id": "p-other"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
        # the binding goes while the stream stays open: its events stop
        api.ok("DELETE", f"/role-bindings/{binding}")
        api.ok("POST", f"/secrets/{shown['id']}/versions", json={"value": NEW_VALUE})
        assert watcher.quiet(2) == []
        assert outsider.quiet(0.5) == []
        assert outsider_principal not in json.dumps(watcher.raw)
    finally:
        watcher.close()
        outsider.close()


def test_long_polling_returns_the_event_and_the_next_cursor(server: Server, api: Api) -> None:
    head = api.ok("GET", "/events")  # after=now, no wait: no event, and the head
    assert head["items"] == [] and isinstance(head["next"], int)
    secret = api.secret("POLLED", PROJECT)
    answer = api.ok("GET", "/events", params={"after": head["next"], "secret": secret["id"]})
    [created] = answer["items"]
    assert created["type"] == "secret.created" and created["secret"]["name"] == "POLLED"
    assert answer["next"] == created["id"]
    # waiting: the answer comes when the change commits, not after `wait`
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        params = {"after": answer["next"], "wait": 30, "secret": secret["id"]}
        result["answer"] = api.ok("GET", "/events", params=params)
        result["seconds"] = time.monotonic() - started

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(1)
    api.ok("POST", f"/secrets/{secret['id']}/versions", json={"value": NEW_VALUE})
    waiting.join(40)
    [updated] = result["answer"]["items"]
    assert updated["type"] == "secret.updated" and updated["version"] == 2
    assert result["answer"]["next"] == updated["id"] and result["seconds"] < 10
    assert NEW_VALUE not in json.dumps(result["answer"]) and VALUE not in json.dumps(answer)
    # nothing new: `wait` seconds, then no item and the same cursor
    started = time.monotonic()
    empty = api.ok(
        "GET", "/events", params={"after": updated["id"], "wait": 1, "secret": secret["id"]}
    )
    assert empty == {"items": [], "next": empty["next"]} and empty["next"] >= updated["id"]
    assert time.monotonic() - started >= 0.9
    bad = api.call("GET", "/events", params={"after": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_keepalive_and_a_bounded_stream(server: Server) -> None:
    listener = Listener(server.addr, server.token, max_seconds=3)
    try:
        assert listener.comment("keepalive", within=5)  # every second here (configured)
        started = time.monotonic()
        while not listener.response.raw.closed and time.monotonic() - started < 10:
            time.sleep(0.2)
            try:
                listener.items.get_nowait()
            except queue.Empty:
                pass
        assert time.monotonic() - started < 10  # it ended by itself
    finally:
        listener.close()


def test_streams_beyond_the_limit_are_answered_503(server: Server) -> None:
    # max_streams is 10 per process and there are two processes: 30 streams overflow either,
    # and the threads left free still answer other requests meanwhile.
    time.sleep(2)  # the streams of the tests before are seen closed at their next keepalive
    listeners = [Listener(server.addr, server.token) for _ in range(30)]
    try:
        statuses = [listener.response.status_code for listener in listeners]
        assert statuses.count(200) <= 20 and 503 in statuses
        assert requests.get(f"{server.addr}/healthz", timeout=5).status_code == 200
        assert Api(server.addr, server.token).call("GET", "/events").status_code in (200, 503)
        refused = next(listener for listener in listeners if listener.response.status_code == 503)
        assert refused.response.json()["error"]["code"] == "too_many_streams"
    finally:
        for listener in listeners:
            listener.close()
    # the slots come back when the streams close
    time.sleep(2)
    again = Listener(server.addr, server.token)
    try:
        assert again.response.status_code == 200
    finally:
        again.close()


def test_the_log_holds_no_value(server: Server) -> None:
    data: Path = server.data_dir
    engine = create_engine_from_url(f"sqlite:///{data / 'secrets.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT * FROM secret_change_events").all()
    finally:
        engine.dispose()
    assert rows and all(VALUE not in repr(row) and NEW_VALUE not in repr(row) for row in rows)


def test_open_streams_leave_the_other_requests_their_threads(tmp_path: Path) -> None:
    """A process with 2 request threads holds 12 streams (threads of their own) and, with all of
    them open, still answers reads; a change reaches every stream (before: no stream at all, as
    the streams had to fit in the request threads less two)."""
    env = serve_env(
        tmp_path / "data",
        free_port(),
        SECRETS_WORKERS="1",
        SECRETS_THREADS="2",
        SECRETS_EVENTS__MAX_STREAMS="12",
        SECRETS_EVENTS__POLL_SECONDS="0.2",
        SECRETS_WORKER__EMBEDDED="false",
    )
    with running_server(env, tmp_path) as started:
        api = Api(started.addr, started.token)
        created = api.secret("MANY_STREAMS", GLOBAL)
        listeners = [Listener(started.addr, started.token) for _ in range(12)]
        try:
            assert [listener.response.status_code for listener in listeners] == [200] * 12
            for _ in range(6):  # more reads than request threads, one after another
                read = requests.get(
                    f"{started.addr}/api/v1/secrets/{created['id']}",
                    headers=api.headers,
                    timeout=10,
                )
                assert read.status_code == 200
            api.ok("POST", f"/secrets/{created['id']}/versions", json={"value": NEW_VALUE})
            for listener in listeners:
                [event] = listener.events(1, within=10)
                assert event["event"] == "secret.updated"
            one_more = Listener(started.addr, started.token)
            try:
                assert one_more.response.status_code == 503
            finally:
                one_more.close()
        finally:
            for listener in listeners:
                listener.close()
