"""The Python client (`clients/python`, package `secret_management_client`) against a served
instance (`secretctl serve`): reads by reference and by path, resolve in one request, typed
values that never print, typed errors, revalidation with a 304, the last good value while the
service is down, threads, fork, and the example consumer service picking up a rotation."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from secret_management_client import (
    Client,
    Expired,
    Forbidden,
    Gone,
    InvalidReference,
    NotFound,
    SecretManagementError,
    SecretValue,
    Unauthenticated,
    Unavailable,
    parse_reference,
)
from secret_management_client.client import USER_AGENT

from tests.e2e.test_serve import Server, free_port, running_server, serve_env

ROOT = Path(__file__).resolve().parents[2]
AWS = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12",
}
DB_PROD = "postgres://app:prod-pw-7c1e9a@db/prod"
DB_ANY = "postgres://app:dev-pw-22b8f0@db/dev"
GLOBAL_VALUE = "global-value-5d3a9e1b"
BINARY = bytes(range(256))


def api(server: Server, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.token}"} | kwargs.pop("headers", {})
    return requests.request(
        method, f"{server.addr}/api/v1{path}", headers=headers, timeout=10, **kwargs
    )


def create(
    server: Server, name: str, value: Any, scope: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    body = {"name": name, "value": value, "scope": scope} | extra
    answer = api(server, "POST", "/secrets", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def write(server: Server, secret_id: str, value: str) -> None:
    answer = api(server, "POST", f"/secrets/{secret_id}/versions", json={"value": value})
    assert answer.status_code == 201, answer.text


def populate(server: Server) -> dict[str, dict[str, Any]]:
    made = api(
        server,
        "POST",
        "/scopes",
        json={"type": "organization", "id": "acme", "parent": {"type": "global"}},
    )
    assert made.status_code == 201, made.text
    project = {"type": "project", "id": "shop", "parent": {"type": "organization", "id": "acme"}}
    shop = {"type": "project", "id": "shop"}
    return {
        "aws": create(server, "AWS", AWS, project, type="aws_credentials"),
        "db_prod": create(server, "DB_URL", DB_PROD, shop, environment="production"),
        "db_any": create(server, "DB_URL", DB_ANY, shop),
        "global": create(server, "SHARED", GLOBAL_VALUE, {"type": "global"}),
        "signing": create(server, "SIGNING_KEY", "signing-key-one-0f1e2d", shop),
        "binary": create(
            server, "BLOB", __import__("base64").b64encode(BINARY).decode(), shop, encoding="base64"
        ),
    }


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, dict[str, Any]]]]:
    workdir = tmp_path_factory.mktemp("python-client")
    with running_server(serve_env(workdir / "data", free_port()), workdir) as server:
        yield server, populate(server)


@pytest.fixture
def server(served: tuple[Server, dict[str, dict[str, Any]]]) -> Server:
    return served[0]


@pytest.fixture
def secrets(served: tuple[Server, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return served[1]


def client_of(server: Server, **options: Any) -> Client:
    return Client(server.addr, server.token, **options)


def test_get_by_reference_reads_typed_values(
    server: Server, secrets: dict[str, dict[str, Any]]
) -> None:
    client = client_of(server)
    aws = client.get(secrets["aws"]["reference"])
    assert aws.json() == AWS  # an aws_credentials secret is a mapping of its fields
    assert aws.json()["secret_access_key"] == AWS["secret_access_key"]
    assert client.get("secret://project/shop/DB_URL?env=production").text() == DB_PROD
    assert client.get("secret://project/shop/DB_URL").text() == DB_ANY
    assert client.get("secret://global/SHARED").text() == GLOBAL_VALUE
    assert client.get("secret://global/global/SHARED").text() == GLOBAL_VALUE
    assert client.get("secret://project/shop/BLOB").bytes() == BINARY
    signing = client.get("secret://project/shop/SIGNING_KEY")
    assert signing.version == 1 and signing.secret_id == secrets["signing"]["id"]
    assert signing.name == "SIGNING_KEY" and signing.bytes() == b"signing-key-one-0f1e2d"
    with pytest.raises(ValueError, match="not JSON") as not_json:
        signing.json()
    assert "signing-key" not in str(not_json.value)


def test_a_pinned_version_and_the_reference_syntax(server: Server) -> None:
    created = create(server, "PINNED", "pinned-one", {"type": "project", "id": "shop"})
    write(server, created["id"], "pinned-two")
    client = client_of(server)
    assert client.get("secret://project/shop/PINNED?version=1").text() == "pinned-one"
    assert client.get("secret://project/shop/PINNED").text() == "pinned-two"
    assert client.get("secret://project/shop/PINNED?stage=current").text() == "pinned-two"
    assert parse_reference("secret://global/global/X").base == "secret://global/X"
    assert str(parse_reference("secret://team/t-1/X?env=prod&stage=previous")) == (
        "secret://team/t-1/X?env=prod&stage=previous"
    )
    for bad in (
        "https://project/shop/X",
        "secret://planet/shop/X",
        "secret://project/shop",
        "secret://project/shop/X?color=red",
        "secret://project/shop/X?version=1&stage=current",
        "secret://project/shop/X?stage=later",
        "secret://project/sh%6Fp/X",
        "secret://global/other/X",
    ):
        with pytest.raises(InvalidReference):
            client.get(bad)


def test_resolve_is_one_request(server: Server, secrets: dict[str, dict[str, Any]]) -> None:
    before = audit_seq(server)
    client = client_of(server)
    resolved = client.resolve(project="shop", environment="production")
    assert resolved["DB_URL"].text() == DB_PROD  # the environment's variant wins
    assert resolved["AWS"].json() == AWS
    assert resolved["SHARED"].text() == GLOBAL_VALUE
    assert resolved["BLOB"].bytes() == BINARY
    assert client.stats.requests == 1
    assert client.resolve(project="shop", environment="production").keys() == resolved.keys()
    assert client.stats.requests == 1  # the second one from the cache
    events = [e for e in audit_since(server, before) if e["user_agent"] == USER_AGENT]
    assert len({event["request_id"] for event in events}) == 1, events
    assert [event["action"] for event in events].count("secret.resolve") == 1


def test_inject_env_sets_the_variables_the_server_maps(server: Server) -> None:
    client = client_of(server)
    environ = {"DB_URL": "kept"}
    names = client.inject_env(project="shop", environment="production", environ=environ)
    assert environ["AWS_ACCESS_KEY_ID"] == AWS["access_key_id"]  # the type's variables
    assert environ["AWS_SECRET_ACCESS_KEY"] == AWS["secret_access_key"]
    assert environ["DB_URL"] == "kept" and "DB_URL" not in names
    assert environ["SHARED"] == GLOBAL_VALUE
    client.inject_env(project="shop", environment="production", environ=environ, overwrite=True)
    assert environ["DB_URL"] == DB_PROD


def test_the_value_never_prints_or_pickles(server: Server, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_of(server)
    value = client.get("secret://project/shop/DB_URL?env=production")
    for shown in (repr(value), str(value), f"{value}", f"{value!r:>40}", repr([value])):
        assert DB_PROD not in shown and "SecretValue(****)" in shown
    assert repr(client.resolve(project="shop")).count("SecretValue(****)") >= 3
    for dump in (pickle.dumps, lambda v: pickle.dumps(v, protocol=0)):
        with pytest.raises(TypeError) as refused:
            dump(value)
        assert DB_PROD not in str(refused.value)
    with pytest.raises(TypeError):
        value.__getstate__()
    assert copy.deepcopy(value) is value  # stays in the process, as itself
    with pytest.raises(TypeError):
        pickle.dumps(client)  # it holds the token
    assert server.token not in repr(client)
    assert DB_PROD not in caplog.text and server.token not in caplog.text


def test_typed_errors(server: Server, secrets: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(Unauthenticated) as unauthenticated:
        Client(server.addr, "not-a-token").get("secret://project/shop/DB_URL")
    assert unauthenticated.value.status == 401 and unauthenticated.value.code == "unauthenticated"
    assert unauthenticated.value.request_id

    with pytest.raises(NotFound) as missing:
        client_of(server).get("secret://project/shop/NOPE")
    assert missing.value.code == "not_found" and missing.value.request_id
    assert isinstance(missing.value, SecretManagementError)

    account = api(
        server,
        "POST",
        "/service-accounts",
        json={"name": "looker", "scope": {"type": "project", "id": "shop"}},
    ).json()
    bound = api(
        server,
        "POST",
        "/role-bindings",
        json={
            "principal": account["principal"],
            "role": "viewer",
            "scope": {"type": "project", "id": "shop"},
        },
    )
    assert bound.status_code == 201, bound.text
    token = api(server, "POST", f"/service-accounts/{account['id']}/tokens", json={}).json()[
        "token"
    ]
    with pytest.raises(Forbidden) as forbidden:
        Client(server.addr, token).get("secret://project/shop/DB_URL")
    assert forbidden.value.status == 403 and forbidden.value.code == "forbidden"

    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    create(
        server,
        "SHORT_LIVED",
        "short-lived-9e8d",
        {"type": "project", "id": "shop"},
        expires_at=soon,
    )
    time.sleep(2.5)
    with pytest.raises(Gone) as gone:
        client_of(server).get("secret://project/shop/SHORT_LIVED")
    assert isinstance(gone.value, Expired) and gone.value.status == 410
    assert "short-lived" not in str(gone.value)


def test_a_503_is_unavailable_with_the_servers_code_and_request_id() -> None:
    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "error": {
                        "code": "backend_unavailable",
                        "message": "the backend is down",
                        "details": {},
                        "request_id": "rid-503",
                    }
                }
            ).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    busy = HTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=busy.serve_forever, daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{busy.server_address[1]}", "t")
        with pytest.raises(Unavailable) as unavailable:
            client.get("secret://project/shop/DB_URL")
        error = unavailable.value
        assert (error.status, error.code, error.request_id) == (
            503,
            "backend_unavailable",
            "rid-503",
        )
    finally:
        busy.shutdown()


def test_revalidation_sees_a_304_and_a_change(server: Server) -> None:
    created = create(
        server,
        "REVALIDATED",
        "revalidated-one",
        {"type": "project", "id": "etag", "parent": {"type": "organization", "id": "acme"}},
        **{},
    )
    client = client_of(server, cache_ttl=0.2, stale_while_revalidate=0)
    assert client.resolve(project="etag")["REVALIDATED"].text() == "revalidated-one"
    for _ in range(3):
        time.sleep(0.25)
        assert client.resolve(project="etag")["REVALIDATED"].text() == "revalidated-one"
    assert client.stats.not_modified >= 1  # If-None-Match with the weak ETag answered 304
    values_read = client.stats.requests
    write(server, created["id"], "revalidated-two")
    time.sleep(0.25)
    assert client.resolve(project="etag")["REVALIDATED"].text() == "revalidated-two"
    assert client.stats.requests == values_read + 2  # the 200 without values, then the values

    reference = "secret://project/etag/REVALIDATED"
    assert client.get(reference).text() == "revalidated-two"
    time.sleep(0.25)
    unchanged = client.stats.unchanged
    assert client.get(reference).text() == "revalidated-two"
    assert client.stats.unchanged == unchanged + 1  # the version did not move: no value read
    write(server, created["id"], "revalidated-three")
    time.sleep(0.25)
    assert client.get(reference).text() == "revalidated-three"


def test_stale_while_revalidate_serves_the_old_value_during_one_refresh(server: Server) -> None:
    created = create(
        server,
        "SWR",
        "swr-one",
        {"type": "project", "id": "swr", "parent": {"type": "organization", "id": "acme"}},
        **{},
    )
    client = client_of(server, cache_ttl=0.2, stale_while_revalidate=60)
    assert client.get("secret://project/swr/SWR").text() == "swr-one"
    write(server, created["id"], "swr-two")
    time.sleep(0.25)
    assert client.get("secret://project/swr/SWR").text() == "swr-one"  # stale, refreshing
    deadline = time.monotonic() + 10
    while client.get("secret://project/swr/SWR").text() != "swr-two":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.stats.refreshes >= 1


def test_many_threads_share_one_client(server: Server) -> None:
    client = client_of(server, cache_ttl=0.05, stale_while_revalidate=0.05)
    expected = {
        "secret://project/shop/DB_URL?env=production": DB_PROD,
        "secret://project/shop/DB_URL": DB_ANY,
        "secret://global/SHARED": GLOBAL_VALUE,
    }
    failures: list[BaseException] = []
    reads = 0
    count = threading.Lock()

    def work() -> None:
        nonlocal reads
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                for reference, value in expected.items():
                    assert client.get(reference).text() == value
                    with count:
                        reads += 1
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures[:3]
    assert reads > 1000
    # One refresh per key at a time: far fewer requests than reads.
    assert client.stats.requests < reads / 20, (client.stats.requests, reads)


def test_a_forked_child_uses_the_client(server: Server) -> None:
    client = client_of(server, cache_ttl=0.3)
    assert client.get("secret://global/SHARED").text() == GLOBAL_VALUE
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # another thread holds the cache's lock at the fork
        with client._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holding.wait(5)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own lock, session and threads
        os.close(read_end)
        signal.alarm(20)
        try:
            first = client.get("secret://global/SHARED").text()  # a cache hit, under the lock
            time.sleep(0.35)
            second = client.get("secret://project/shop/DB_URL").text()  # a request of its own
            os.write(write_end, json.dumps([first == GLOBAL_VALUE, second == DB_ANY]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    release.set()
    holder.join()
    with os.fdopen(read_end) as pipe:
        said = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(said) == [True, True]
    assert client.get("secret://project/shop/DB_URL").text() == DB_ANY  # the parent goes on


def test_the_last_good_value_while_the_service_is_down(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="secret_management_client")
    with running_server(serve_env(tmp_path / "data", free_port()), tmp_path) as server:
        create(server, "LAST_GOOD", "last-good-4a5b", {"type": "global"})
        falls_back = client_of(server, cache_ttl=0.1, stale_while_revalidate=0)
        strict = client_of(
            server, cache_ttl=0.1, stale_while_revalidate=0, fallback_to_last_good=False
        )
        for client in (falls_back, strict):
            assert client.get("secret://global/LAST_GOOD").text() == "last-good-4a5b"
            assert client.resolve()["LAST_GOOD"].text() == "last-good-4a5b"
    time.sleep(0.15)  # the server is stopped; the entries are due
    for _ in range(3):
        assert falls_back.get("secret://global/LAST_GOOD").text() == "last-good-4a5b"
        assert falls_back.resolve()["LAST_GOOD"].text() == "last-good-4a5b"
        time.sleep(0.12)
    assert falls_back.stats.fallbacks >= 2
    warnings = [r for r in caplog.records if "serving the last good values" in r.getMessage()]
    assert len(warnings) == 1  # once per outage
    assert "last-good" not in caplog.text
    with pytest.raises(Unavailable) as unavailable:
        strict.get("secret://global/LAST_GOOD")
    assert unavailable.value.code == "unreachable" and "last-good" not in str(unavailable.value)
    with pytest.raises(Unavailable):
        client_of(server).get("secret://global/NEVER_READ")  # nothing to fall back to


def has_change_feed(server: Server) -> bool:
    """Whether the server has the change feed (long polling or Server-Sent Events)."""
    if api(server, "GET", "/events", params={"after": "now", "wait": 0}).status_code != 404:
        return True
    with api(server, "GET", "/events/stream", stream=True) as answer:
        return answer.status_code != 404


def test_the_example_consumer_service_picks_up_a_rotation(server: Server, tmp_path: Path) -> None:
    """The issue's required test: the example service starts, reads its secrets through the
    client, sees a rotation through the change feed and serves the new value without a
    restart. With the feed its cache never expires within the test (only an event can refresh
    it); on a server without the feed the client revalidates every 2 s instead."""
    streamed = has_change_feed(server)
    created = create(
        server, "EXAMPLE_KEY", "example-key-one-71c2", {"type": "project", "id": "shop"}
    )
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SECRETS_")},
        "SECRETS_ADDR": server.addr,
        "SECRETS_TOKEN": server.token,
        "CONSUMER_SIGNING_KEY_REF": "secret://project/shop/EXAMPLE_KEY",
        "CONSUMER_PROJECT": "shop",
        "CONSUMER_ENVIRONMENT": "production",
        "CONSUMER_CACHE_TTL": "600" if streamed else "2",
        "CONSUMER_PORT": str(port),
    }
    log_path = tmp_path / "consumer.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples/consumer-service/app.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

        def signature(key: str) -> str:
            return hmac.new(key.encode(), b"order-42", hashlib.sha256).hexdigest()

        signed = requests.get(f"{base}/sign", params={"message": "order-42"}, timeout=5).json()
        assert signed == {"signature": signature("example-key-one-71c2"), "key_version": 1}
        status = requests.get(f"{base}/status", timeout=5).json()
        assert status["versions"]["DB_URL"] == 1 and status["versions"]["signing_key"] == 1

        rotated = api(
            server,
            "POST",
            f"/secrets/{created['id']}/rotate",
            json={"value": "example-key-two-93d4"},
        )
        if rotated.status_code >= 400:  # a generic secret without a rotator: a new version
            write(server, created["id"], "example-key-two-93d4")
        deadline = time.monotonic() + 30
        while signed["signature"] != signature("example-key-two-93d4"):
            assert time.monotonic() < deadline, (signed, log_path.read_text())
            time.sleep(0.2)
            signed = requests.get(f"{base}/sign", params={"message": "order-42"}, timeout=5).json()
        assert signed["key_version"] == 2
        after = requests.get(f"{base}/status", timeout=5).json()
        assert after["pid"] == status["pid"] == process.pid  # no restart
        if streamed:
            assert after["client"]["events"] >= 1  # refreshed by the change feed
    finally:
        process.terminate()
        process.wait(timeout=10)
    output = log_path.read_text()
    assert "example-key-one" not in output and "example-key-two" not in output
    assert server.token not in output


def audit_seq(server: Server) -> int:
    items = api(server, "GET", "/audit/events", params={"limit": 1}).json()["items"]
    return items[0]["seq"] if items else 0


def audit_since(server: Server, seq: int) -> list[dict[str, Any]]:
    items = api(server, "GET", "/audit/events", params={"limit": 200}).json()["items"]
    return [item for item in items if item["seq"] > seq]


def test_secret_value_equality_does_not_leak() -> None:
    one, same, other = SecretValue(b"a"), SecretValue(b"a"), SecretValue(b"b")
    assert one == same and one != other
    with pytest.raises(TypeError):
        hash(one)


def test_get_many_in_one_batch(server: Server, secrets: dict[str, dict[str, Any]]) -> None:
    client = client_of(server)
    references = [
        "secret://project/shop/DB_URL?env=production",
        "secret://global/SHARED",
        secrets["aws"]["reference"],
    ]
    values = client.get_many(references)
    assert list(values) == references
    assert values[references[0]].text() == DB_PROD and values[references[2]].json() == AWS
    batched = client.stats.requests
    assert batched == 2  # a probe for the batch endpoint, then one batch
    assert client.get("secret://global/SHARED").text() == GLOBAL_VALUE
    assert client.stats.requests == batched  # the batch filled the cache
    with pytest.raises(NotFound):
        client.get_many(["secret://global/SHARED", "secret://global/MISSING_ONE"])


class FeedServer:
    """A stand-in for the change feed's two forms (long polling or Server-Sent Events) in front
    of one secret, `secret://project/p/KEY`, whose version the test moves: the client's side of
    the protocol, whichever form the server has."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.version = 1
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.last_event_ids: list[str | None] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                if path == "/api/v1/scopes/project/p/secrets/KEY/value":
                    self.json(200, feed.value())
                elif path == "/api/v1/scopes/project/p/secrets/KEY":
                    self.json(200, {"current_version": feed.version})
                elif path == "/api/v1/events" and feed.mode == "poll":
                    self.json(200, feed.poll(params.get("after", "now"), int(params["wait"])))
                elif path == "/api/v1/events/stream" and feed.mode == "sse":
                    self.stream(self.headers.get("Last-Event-ID"))
                else:
                    self.json(404, {"error": {"code": "not_found", "message": "no route"}})

            def json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, last_event_id: str | None) -> None:
                feed.last_event_ids.append(last_event_id)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                sent = int(last_event_id or len(feed.events))
                try:
                    for _ in range(100):
                        with feed.changed:
                            feed.changed.wait(0.1)
                            pending = feed.events[sent:]
                        self.wfile.write(b": keepalive\n\n")
                        for event in pending:
                            line = f"id: {event['id']}\nevent: {event['type']}\n"
                            self.wfile.write(f"{line}data: {json.dumps(event)}\n\n".encode())
                            sent = event["id"]
                        self.wfile.flush()
                        if pending:
                            return  # end the connection: the client resumes with Last-Event-ID
                except OSError:
                    return

            def log_message(self, *_: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.addr = f"http://127.0.0.1:{self.http.server_address[1]}"

    def value(self) -> dict[str, Any]:
        return {"id": "sid-1", "name": "KEY", "version": self.version, "value": f"v{self.version}"}

    def poll(self, after: str, wait: int) -> dict[str, Any]:
        start = len(self.events) if after == "now" else int(after)
        with self.changed:
            if len(self.events) <= start:
                self.changed.wait(wait)
            return {"items": self.events[start:], "next": len(self.events)}

    def rotate(self) -> None:
        with self.changed:
            self.version += 1
            reference = "secret://project/p/KEY"
            secret = {"id": "sid-1", "scope": {"type": "project", "id": "p"}, "name": "KEY"}
            secret |= {"environment": None, "reference": reference}
            event_id = len(self.events) + 1
            event = {"id": event_id, "type": "secret.rotated", "secret": secret}
            self.events.append(event | {"version": self.version})
            self.changed.notify_all()


@pytest.mark.parametrize("mode", ["poll", "sse"])
def test_the_watcher_refreshes_what_the_feed_says_changed(mode: str) -> None:
    feed = FeedServer(mode)
    client = Client(feed.addr, "t", cache_ttl=600, watch=True, watch_wait=2)
    try:
        assert client.get("secret://project/p/KEY").text() == "v1"
        time.sleep(0.5)  # the watcher is at the head of the feed
        for expected in ("v2", "v3"):
            feed.rotate()
            deadline = time.monotonic() + 10
            while client.get("secret://project/p/KEY").text() != expected:
                assert time.monotonic() < deadline, (mode, client.stats)
                time.sleep(0.05)
        assert client.stats.events == 2
        if mode == "sse":  # the second connection resumed after the first event
            assert "1" in feed.last_event_ids
    finally:
        client.close()
        feed.http.shutdown()


def test_a_certificate_reads_as_its_parts(server: Server) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    made = create(
        server,
        "TLS",
        {"certificate": pem, "private_key": private},
        {"type": "project", "id": "shop"},
        type="certificate",
    )
    value = Client(server.addr, server.token).get(made["reference"])
    parts = value.json()
    assert parts["certificate"] == pem and parts["private_key"] == private
    assert value.expires_at is not None  # the certificate's notAfter
    assert "PRIVATE KEY" not in repr(value)
