"""An operator can see inside (issue #16): Prometheus metrics at `/metrics`, the request log
line in plain text or JSON, and CORS for a front end on another origin.

In-process tests drive the app through Flask's client; the others run a real `secretctl serve`
with two granian worker processes, whose counts a scrape must add up exactly."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from adapters.db.tables import outbox, rotation_policies
from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import TOKEN, ApiClient, user_token
from tests.e2e.test_serve import Server, free_port, running_server, serve_env

VALUE = "sk-observability-value-5e1f0c2a"
NAME = "OBSERVED_SECRET_NAME"
ORIGIN = "https://console.platform.test"
METRICS_TOKEN = "metrics-token-7b2e9d41c0aa4f3e"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests_counted(series: Series) -> Counter[tuple[str, str, str]]:
    """`http_requests_total` as (method, route, status) -> count."""
    counted: Counter[tuple[str, str, str]] = Counter()
    for (name, labels), value in series.items():
        if name == "secret_management_http_requests_total":
            found = dict(labels)
            counted[found["method"], found["route"], found["status"]] = int(value)
    return counted


def assert_no_identifying_label(series: Series, *never: str) -> None:
    """No label value is a path with an id or a name in it, nor any of `never`."""
    for _, labels in series:
        for key, value in labels:
            assert not UUID.search(value), (key, value)
            assert all(secret not in value for secret in never), (key, value)
            if key == "route":
                assert value == "unmatched" or value.startswith("/"), value


# -- in-process ------------------------------------------------------------------------------


def scrape(app: Flask, **headers: str) -> Series:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def test_requests_are_counted_by_route_template_and_status_both_ways(
    app: Flask, api: ApiClient
) -> None:
    created = api.create(name=NAME, value=VALUE, scope={"type": "project", "id": "p-42"})
    secret_id = created["id"]
    before = requests_counted(scrape(app))
    by_path = f"/scopes/project/p-42/secrets/{NAME}/value"
    assert api.get(f"/secrets/{secret_id}/value").status_code == 200  # the hot path
    assert api.get(f"/secrets/{secret_id}/value?version=1").status_code == 200  # Flask
    assert api.get(by_path).status_code == 200  # the hot path
    assert api.get(by_path + "?environment=").status_code == 200  # Flask
    assert api.get(f"/secrets/{uuid.uuid4()}/value").status_code == 404
    anonymous = app.test_client()
    assert anonymous.get(f"/api/v1/secrets/{secret_id}/value").status_code == 401
    assert api.get("/secrets/no-such-thing").status_code == 404  # no route matches
    assert app.wsgi_app.served >= 3  # type: ignore[attr-defined]

    series = scrape(app)
    counted = requests_counted(series) - before
    assert counted == {
        ("GET", "/api/v1/secrets/{secret_id}/value", "200"): 2,
        ("GET", "/api/v1/secrets/{secret_id}/value", "404"): 1,
        ("GET", "/api/v1/secrets/{secret_id}/value", "401"): 1,
        ("GET", "/api/v1/scopes/{scope_type}/{scope_id}/secrets/{name}/value", "200"): 2,
        ("GET", "unmatched", "404"): 1,
        ("GET", "/metrics", "200"): 1,  # the first scrape
    }
    assert series["secret_management_auth_failures_total", (("reason", "invalid_token"),)] == 1
    assert_no_identifying_label(series, NAME, VALUE, TOKEN, "p-42")
    reads = [
        value
        for (name, labels), value in series.items()
        if name == "secret_management_backend_operations_total" and ("backend", "local") in labels
    ]
    assert sum(reads) >= 4
    assert series["secret_management_audit_append_batch_events_count", ()] >= 5


def test_the_database_gauges_are_read_at_each_scrape(app: Flask, api: ApiClient) -> None:
    now = datetime.now(UTC)
    soon = api.create(
        name="EXPIRES_SOON",
        value="v",
        scope={"type": "global"},
        expires_at=(now + timedelta(days=3)).isoformat(),
    )
    api.create(
        name="EXPIRES_LATER",
        value="v",
        scope={"type": "global"},
        expires_at=(now + timedelta(days=20)).isoformat(),
    )
    engine = app.extensions["container"].engine()
    hour_ago = now - timedelta(hours=1)
    rows = [(0, now + timedelta(hours=1)), (2, hour_ago), (12, None)]
    with engine.begin() as connection:
        for attempts, next_attempt in rows:
            connection.execute(
                insert(outbox).values(
                    id=uuid.uuid4(),
                    event_id=uuid.uuid4(),
                    type="secret.updated",
                    target="hooks",
                    secret_id=None,
                    payload={},
                    created_at=hour_ago,
                    attempts=attempts,
                    next_attempt_at=next_attempt,
                )
            )
        connection.execute(
            insert(rotation_policies).values(
                secret_id=uuid.UUID(soon["id"]),
                rotator="random_password",
                settings={},
                interval_seconds=3600,
                grace_seconds=0,
                next_run_at=hour_ago,
                last_status="failed",
                last_error="the target refused",
                created_at=hour_ago,
                created_by="user:op",
            )
        )

    series = scrape(app)
    assert series["secret_management_operations_scrape_ok", ()] == 1
    outbox_states = {
        dict(labels)["state"]: value
        for (name, labels), value in series.items()
        if name == "secret_management_outbox_events"
    }
    assert outbox_states == {"pending": 1, "retrying": 1, "given_up": 1}
    assert series["secret_management_rotations_due", ()] == 1
    assert series["secret_management_rotations_failed", ()] == 1
    lag = series["secret_management_worker_lag_seconds", (("queue", "rotation"),)]
    assert 3500 < lag < 3700
    assert 3500 < series["secret_management_worker_lag_seconds", (("queue", "outbox"),)] < 3700
    expiring = {
        dict(labels)["days"]: value
        for (name, labels), value in series.items()
        if name == "secret_management_secrets_expiring"
    }
    assert expiring == {"0": 0, "1": 0, "7": 1, "30": 2}


def production_app(settings: Settings, **changes: object) -> Flask:
    """The app in production mode, on the key file and database the development one made."""
    return create_app(replace(settings, mode="production", dev_root_token=None, **changes))


@pytest.fixture
def protected(app: Flask, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("OBS_METRICS_TOKEN", METRICS_TOKEN)
    protected = production_app(
        settings, metrics={**settings.metrics, "token_env": "OBS_METRICS_TOKEN"}
    )
    yield protected
    protected.extensions["container"].shutdown_resources()


def test_metrics_behind_a_token_of_their_own(protected: Flask) -> None:
    client = protected.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.get_json()["error"]["code"] == "unauthenticated"
    series = scrape(protected, Authorization=f"Bearer {METRICS_TOKEN}")
    assert series["secret_management_auth_failures_total", (("reason", "invalid_token"),)] == 3
    assert requests_counted(series)["GET", "/metrics", "401"] == 3


def test_production_without_a_token_or_a_port_serves_no_metrics(
    app: Flask, settings: Settings
) -> None:
    production = production_app(settings)
    try:
        client = production.test_client()
        assert client.get("/metrics").status_code == 401  # as any path without a token
        user = {"Authorization": f"Bearer {user_token('alice')}"}
        assert client.get("/metrics", headers=user).status_code == 404
    finally:
        production.extensions["container"].shutdown_resources()


def test_metrics_can_be_turned_off(settings: Settings) -> None:
    app = create_app(replace(settings, metrics={**settings.metrics, "enabled": False}))
    try:
        assert app.test_client().get("/metrics").status_code == 401
        root = {"Authorization": f"Bearer {TOKEN}"}
        assert app.test_client().get("/metrics", headers=root).status_code == 404
    finally:
        app.extensions["container"].shutdown_resources()


# -- CORS ------------------------------------------------------------------------------------


@pytest.fixture
def cors_app(settings: Settings) -> Iterator[Flask]:
    app = create_app(replace(settings, cors={"allowed_origins": [ORIGIN], "max_age_seconds": 600}))
    yield app
    app.extensions["container"].shutdown_resources()


PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, if-match",
}


def test_a_preflight_from_an_allowed_origin_is_answered_not_refused(cors_app: Flask) -> None:
    answer = cors_app.test_client().options("/api/v1/secrets", headers=PREFLIGHT)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = answer.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "if-match"} <= set(allowed.split(", "))
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert answer.headers["X-Content-Type-Options"] == "nosniff"  # the security headers stay


def test_answers_to_an_allowed_origin_carry_cors_headers_errors_too(cors_app: Flask) -> None:
    api = ApiClient(cors_app.test_client())
    created = api.create(name="CORS_READ", value=VALUE, scope={"type": "global"})
    path = f"/secrets/{created['id']}/value"
    read = api.get(path, headers={"Origin": ORIGIN})  # not the hot path: it has an Origin
    assert read.status_code == 200 and read.get_json()["value"] == VALUE
    assert read.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "ETag" in read.headers["Access-Control-Expose-Headers"]
    refused = cors_app.test_client().get(f"/api/v1{path}", headers={"Origin": ORIGIN})
    assert refused.status_code == 401  # a real request still needs its token
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN  # and the page can read why
    plain = api.get(path)  # no Origin: the hot path, the same answer as ever
    assert plain.status_code == 200 and "Access-Control-Allow-Origin" not in plain.headers
    other = api.get(path, headers={"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_no_cors_header_when_no_origin_is_configured(app: Flask) -> None:
    answer = app.test_client().options("/api/v1/secrets", headers=PREFLIGHT)
    assert not [name for name in answer.headers.keys() if name.startswith("Access-Control")]
    read = ApiClient(app.test_client()).get("/secrets", headers={"Origin": ORIGIN})
    assert read.status_code == 200
    assert not [name for name in read.headers.keys() if name.startswith("Access-Control")]


# -- a real server: two worker processes ------------------------------------------------------


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    env = serve_env(
        tmp_path / "data",
        free_port(),
        SECRETS_WORKERS="2",
        SECRETS_LOG_FORMAT="json",
        SECRETS_AUTH__FAILURES_PER_MINUTE="0",  # the load's 40 bad tokens: all answered 401
    )
    with running_server(env, tmp_path) as started:
        yield started


def multiprocess_directory(server: Server) -> Path:
    """The server's metrics directory, as its embedded worker (a program it started with its
    environment) was told."""
    tasks = Path(f"/proc/{server.process.pid}/task").glob("*/children")
    for child in (pid for task in tasks for pid in task.read_text().split()):
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return Path(item.split(b"=", 1)[1].decode())
    raise AssertionError("no process of the server names its metrics directory")


def test_a_scrape_during_a_load_counts_what_the_load_sent(two_workers: Server) -> None:
    server = two_workers
    auth = {"Authorization": f"Bearer {server.token}"}
    api = f"{server.addr}/api/v1"
    body = {"name": NAME, "value": VALUE, "scope": {"type": "global"}}
    created = requests.post(f"{api}/secrets", json=body, headers=auth, timeout=10)
    assert created.status_code == 201, created.text
    secret_id = created.json()["id"]
    requests_by_kind = {
        ("GET", "/api/v1/secrets/{secret_id}/value", "200"): (f"/secrets/{secret_id}/value", auth),
        ("GET", "/api/v1/scopes/{scope_type}/{scope_id}/secrets/{name}/value", "200"): (
            f"/scopes/global/global/secrets/{NAME}/value",
            auth,
        ),
        ("GET", "/api/v1/secrets", "200"): ("/secrets?page_size=5", auth),
        ("GET", "/api/v1/secrets/{secret_id}", "404"): (f"/secrets/{uuid.uuid4()}", auth),
        ("GET", "/api/v1/secrets/{secret_id}/value", "401"): (f"/secrets/{secret_id}/value", {}),
    }
    kinds = list(requests_by_kind)
    plan = [kinds[n % len(kinds)] for n in range(200)]
    baseline_text = requests.get(f"{server.addr}/metrics", timeout=10).text
    before = requests_counted(parse(baseline_text))

    scrapes: list[Counter[tuple[str, str, str]]] = []
    load_done = threading.Event()

    def scrape_during_load() -> None:
        while not load_done.is_set():
            answer = requests.get(f"{server.addr}/metrics", timeout=10)
            assert answer.status_code == 200
            scrapes.append(requests_counted(parse(answer.text)))

    def send(share: list[tuple[str, str, str]], failures: list[str]) -> None:
        with requests.Session() as session:
            for kind in share:
                path, headers = requests_by_kind[kind]
                answer = session.get(f"{api}{path}", headers=headers, timeout=10)
                if str(answer.status_code) != kind[2]:
                    failures.append(f"{kind}: {answer.status_code}")

    failures: list[str] = []
    scraper = threading.Thread(target=scrape_during_load)
    senders = [threading.Thread(target=send, args=(plan[n::4], failures)) for n in range(4)]
    scraper.start()
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(120)
    load_done.set()
    scraper.join(30)
    assert failures == []
    assert scrapes, "no scrape happened during the load"

    after = parse(requests.get(f"{server.addr}/metrics", timeout=10).text)
    sent = Counter(plan)
    sent["GET", "/metrics", "200"] = 1 + len(scrapes)  # the baseline and the load's scrapes
    assert requests_counted(after) - before == sent
    for during in scrapes:  # each scrape saw counts only grow
        assert not (before - during)
    assert_no_identifying_label(after, NAME, VALUE, server.token)
    assert after["secret_management_auth_failures_total", (("reason", "invalid_token"),)] >= 40

    directory = multiprocess_directory(server)
    assert oct(directory.stat().st_mode & 0o777) == oct(0o700)
    writers = {path.name.split("_")[-1] for path in directory.glob("counter_*.db")}
    assert len(writers) >= 2, writers  # the HTTP workers' counts, each in its own file

    log_lines = server.output().splitlines()
    records = [json.loads(line) for line in log_lines if line.startswith("{")]
    access = [r for r in records if r["logger"] == "secret_management.access"]
    hot = [r for r in access if r["route"] == "/api/v1/secrets/{secret_id}/value"]
    assert len(hot) >= 80
    assert {(r["method"], r["status"]) for r in hot} == {("GET", 200), ("GET", 401)}
    assert {r["principal"] for r in hot} == {"root", "-"}
    for record in access:
        assert set(record) >= {"time", "level", "request_id", "message", "duration_ms"}
        assert record["level"] == "INFO" and record["request_id"] != "-"
    assert any(r["logger"] == "_granian" for r in records)  # granian's own lines too
    text = server.output()
    assert VALUE not in text
    assert server.token not in text.replace(f"SECRETS_TOKEN={server.token}", "")
    assert NAME not in text and secret_id not in text


def test_metrics_on_a_port_of_their_own(tmp_path: Path) -> None:
    metrics_port = free_port()
    env = serve_env(
        tmp_path / "data",
        free_port(),
        SECRETS_WORKERS="2",
        SECRETS_METRICS__PORT=str(metrics_port),
    )
    with running_server(env, tmp_path) as server:
        auth = {"Authorization": f"Bearer {server.token}"}
        for _ in range(30):
            answer = requests.get(f"{server.addr}/api/v1/secrets", headers=auth, timeout=10)
            assert answer.status_code == 200
        assert requests.get(f"{server.addr}/metrics", timeout=10).status_code == 401
        listener = f"http://127.0.0.1:{metrics_port}/metrics"
        series = parse(requests.get(listener, timeout=10).text)
        assert requests_counted(series)["GET", "/api/v1/secrets", "200"] == 30
        assert series["secret_management_operations_scrape_ok", ()] == 1


def test_plain_log_lines_carry_the_request_fields(
    app: Flask, api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = api.create(name=NAME, value=VALUE, scope={"type": "global"})
    caplog.clear()
    api.get(f"/secrets/{created['id']}/value", headers={"X-Request-Id": "req-obs-1"})
    [line] = [r for r in caplog.records if r.name == "secret_management.access"]
    assert line.levelname == "INFO"
    assert line.getMessage().startswith("GET /api/v1/secrets/{secret_id}/value 200 ")
    assert line.getMessage().endswith("ms root")
    assert (line.method, line.route, line.status, line.principal) == (  # type: ignore[attr-defined]
        "GET",
        "/api/v1/secrets/{secret_id}/value",
        200,
        "root",
    )
    assert line.request_id == "req-obs-1"  # type: ignore[attr-defined]
    assert created["id"] not in caplog.text and VALUE not in caplog.text
