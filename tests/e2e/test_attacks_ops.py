"""Attacks on the service's operation, over HTTP (issue 14): failed-authentication floods,
unauthenticated readiness probes against a hanging backend, a world-readable database file,
answers without security headers, a docs page that runs another host's scripts."""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from dependency_injector import providers
from flask import Flask

from core.backends import BackendRegistry
from entrypoints.config import Settings
from entrypoints.container import reset_use_cases
from entrypoints.http.app import create_app
from entrypoints.http.failed_auth import FailedAuthentications
from entrypoints.http.health import Readiness
from ports.storage import BackendHealth
from tests.e2e.conftest import TOKEN, ApiClient, user_token
from tests.fakes import InMemoryBackend

VALUE = "ops-attack-value-5d4c3b2a1908"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def limited_app(settings: Settings, failures_per_minute: int) -> Flask:
    return create_app(replace(settings, auth={"failures_per_minute": failures_per_minute}))


def audit_events(app: Flask, action: str) -> list[dict]:
    answer = ApiClient(app.test_client()).get(f"/audit/events?action={action}&limit=500")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["items"]


# -- failed authentication --------------------------------------------------------------------


def test_a_flood_of_bad_tokens_is_answered_429_and_stops_writing_an_event_each(
    settings: Settings,
) -> None:
    app = limited_app(settings, failures_per_minute=5)
    try:
        attacker = app.test_client()
        secret = ApiClient(app.test_client()).create(name="FLOODED", value=VALUE)
        paths = ["/api/v1/secrets", f"/api/v1/secrets/{secret['id']}/value"]  # Flask, hot path
        answers = [
            attacker.get(paths[n % 2], headers={"Authorization": f"Bearer bad-token-{n}"})
            for n in range(40)
        ]
        assert [a.status_code for a in answers[:5]] == [401] * 5
        assert {a.status_code for a in answers[5:]} == {429}
        for answer in answers[5:]:
            assert answer.get_json()["error"]["code"] == "rate_limited"
            assert 1 <= int(answer.headers["Retry-After"]) <= 60
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert app.wsgi_app.served >= 20  # the hot path answered half of them

        # One event each for the five under the limit; none for the 35 refused over it.
        refused = [e for e in audit_events(app, "auth.authenticate") if e["outcome"] == "denied"]
        assert len(refused) == 5

        # A good token from the same address is served: only failures are limited.
        assert ApiClient(app.test_client()).get("/secrets").status_code == 200
        # Another address has its own count.
        elsewhere = app.test_client().get(
            "/api/v1/secrets",
            headers={"Authorization": "Bearer bad"},
            environ_base={"REMOTE_ADDR": "192.0.2.9"},
        )
        assert elsewhere.status_code == 401
    finally:
        app.extensions["container"].shutdown_resources()


def test_refused_attempts_are_audited_once_per_source_and_window(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    container = app.extensions["container"]
    limiter = FailedAuthentications(2, container.audit_trail(), window_seconds=1)
    container.failed_authentications.override(providers.Object(limiter))
    client = app.test_client()
    bad = {"Authorization": "Bearer not-a-token"}
    statuses = [client.get("/api/v1/secrets", headers=bad).status_code for _ in range(9)]
    assert statuses == [401, 401] + [429] * 7
    warnings = [r.getMessage() for r in caplog.records if "over the limit" in r.getMessage()]
    assert warnings == [
        "failed authentications from 127.0.0.1 over the limit (2 in 1 s): answered 429"
    ]
    deadline = time.monotonic() + 10
    while not (aggregate := audit_events(app, "auth.rate_limited")):
        assert time.monotonic() < deadline, "no aggregate event"
        time.sleep(0.1)
    [event] = aggregate
    assert event["outcome"] == "denied" and event["actor"] == "anonymous"
    assert event["source_ip"] == "127.0.0.1" and event["resource"] == "source:127.0.0.1"
    assert event["reason"].startswith("7 failed authentications answered 429 in 1 s")
    # The window is over: the source is checked again, and refused with 401 as ever.
    time.sleep(1.1)
    assert client.get("/api/v1/secrets", headers=bad).status_code == 401


def test_an_ipv6_host_cannot_dodge_the_limit_by_changing_address(settings: Settings) -> None:
    app = limited_app(settings, failures_per_minute=3)
    try:
        client = app.test_client()

        def attempt(address: str) -> int:
            bad = {"Authorization": "Bearer bad"}
            environ = {"REMOTE_ADDR": address}
            return client.get("/api/v1/secrets", headers=bad, environ_base=environ).status_code

        same_network = [attempt(f"2001:db8:1:2::{n:x}") for n in range(1, 6)]
        assert same_network == [401, 401, 401, 429, 429]  # one /64: one count
        assert attempt("2001:db8:1:3::1") == 401  # another /64
        mapped = [attempt(address) for address in ("::ffff:192.0.2.1", "192.0.2.1") * 2]
        assert mapped == [401, 401, 401, 429]  # an IPv4-mapped address is its IPv4 host
    finally:
        app.extensions["container"].shutdown_resources()


class Untouchable:
    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"a successful request used the limiter ({name})")


def test_successful_requests_never_touch_the_limiter(app: Flask) -> None:
    container = app.extensions["container"]
    api = ApiClient(app.test_client())
    secret = api.create(name="UNTOUCHED", value=VALUE)
    container.failed_authentications.override(providers.Object(Untouchable()))
    as_user = ApiClient(app.test_client(), token=user_token("alice"))
    for path in ("/secrets", f"/secrets/{secret['id']}/value", "/auth/whoami"):
        assert api.get(path).status_code == 200, path
    assert as_user.get("/auth/whoami").status_code == 200


# -- readiness --------------------------------------------------------------------------------


class HangingBackend(InMemoryBackend):
    """An optional backend whose health check does not answer until released."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()
        self.health_calls = 0

    def health(self) -> BackendHealth:
        self.health_calls += 1
        self.release.wait(60)
        return super().health()


@pytest.fixture
def hanging(app: Flask) -> Iterator[HangingBackend]:
    container = app.extensions["container"]
    backend = HangingBackend("slow")
    local = container.backends().get("local")
    registry = BackendRegistry({"local": local, "slow": backend}, default="local")
    container.backends.override(providers.Object(registry))
    reset_use_cases(container)
    yield backend
    backend.release.set()
    container.backends.reset_override()
    reset_use_cases(container)


def test_a_hanging_optional_backend_neither_holds_readyz_nor_fails_it(
    app: Flask, hanging: HangingBackend
) -> None:
    client = app.test_client()
    started = time.monotonic()
    ready = client.get("/readyz")
    assert time.monotonic() - started < 4  # the check's bound (2 s), not the backend's hang
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["backend:slow"] == {
        "ok": False,
        "latency_ms": 2000.0,
        "detail": "timeout",
        "required": False,
    }
    assert body["checks"]["database"]["ok"] and body["checks"]["database"]["required"]
    assert body["checks"]["backend:local"]["ok"] and body["checks"]["backend:local"]["required"]

    # Many unauthenticated probes at once: answered from one run, the backend asked once.
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(client.get("/readyz").status_code))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200] * 20
    assert hanging.health_calls == 1  # still hanging: waited for again, never started twice


def test_readiness_is_cached_and_fails_on_the_default_backend(app: Flask) -> None:
    container = app.extensions["container"]
    default = InMemoryBackend("local")
    registry = BackendRegistry({"local": default}, default="local")
    container.backends.override(providers.Object(registry))
    app.extensions["readiness"] = Readiness(container, cache_seconds=0.5)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    default.down = True
    assert client.get("/readyz").status_code == 200  # the report of 0.5 s ago
    time.sleep(0.6)
    failed = client.get("/readyz")
    assert failed.status_code == 503 and failed.get_json()["status"] == "unavailable"
    assert failed.get_json()["checks"]["backend:local"]["detail"] == "down"


# -- the database file ------------------------------------------------------------------------


def test_the_sqlite_file_is_private_in_a_world_readable_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    settings = Settings(
        data_dir=data_dir,
        dev_root_token=TOKEN,
        database_url=f"sqlite:///{data_dir / 'secrets.db'}",
        keys={"provider": "file", "path": str(data_dir / "master.key")},
    )
    previous = os.umask(0o022)
    try:
        from adapters.db.engine import create_engine_from_url
        from adapters.db.migrate import upgrade

        engine = create_engine_from_url(settings.database_url)
        upgrade(engine)
        engine.dispose()
        app = create_app(settings)
        try:
            ApiClient(app.test_client()).create(name="ON_DISK", value=VALUE)
            files = sorted(path.name for path in data_dir.glob("secrets.db*"))
            assert "secrets.db" in files and "secrets.db-wal" in files, files
            for name in files:
                mode = stat.S_IMODE(os.stat(data_dir / name).st_mode)
                assert mode == 0o600, (name, oct(mode))
        finally:
            app.extensions["container"].shutdown_resources()
        # A file left readable by an older version is made private when it is next opened.
        os.chmod(data_dir / "secrets.db", 0o644)
        create_engine_from_url(settings.database_url).dispose()
        assert stat.S_IMODE(os.stat(data_dir / "secrets.db").st_mode) == 0o600
    finally:
        os.umask(previous)


# -- headers and the docs page ----------------------------------------------------------------


def test_every_answer_carries_the_security_headers(app: Flask, api: ApiClient) -> None:
    secret = api.create(name="HEADERS", value=VALUE)
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers = {
        "hot path value": client.get(f"/api/v1/secrets/{secret['id']}/value", headers=bearer),
        "hot path error": client.get(f"/api/v1/secrets/{secret['id']}/value"),
        "value": client.get(f"/api/v1/secrets/{secret['id']}/value?version=1", headers=bearer),
        "list": client.get("/api/v1/secrets", headers=bearer),
        "not found": client.get("/api/v1/nothing-here", headers=bearer),
        "unauthenticated": client.get("/api/v1/secrets"),
        "probe": client.get("/healthz"),
        "openapi": client.get("/api/v1/openapi.json"),
        "docs": client.get("/api/v1/docs"),
    }
    assert app.wsgi_app.served == 2
    for name, answer in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header) == value, (name, header)
        policy = answer.headers["Content-Security-Policy"]
        if name == "docs":
            assert policy.startswith("default-src 'self';")
        else:
            assert policy == "default-src 'none'; frame-ancestors 'none'", name


def test_the_docs_page_loads_nothing_from_another_host(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>" not in html  # no inline script: the policy below allows none
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(urls) == 4, urls
    kinds = {}
    for url in urls:
        assert url.startswith("/api/v1/docs/"), url
        answer = client.get(url)
        assert answer.status_code == 200, url
        kinds[url.rsplit("/", 1)[1]] = answer.mimetype
    assert kinds == {
        "favicon-32x32.png": "image/png",
        "swagger-ui.css": "text/css",
        "swagger-ui-bundle.js": "text/javascript",
        "initializer.js": "text/javascript",
    }
    policy = page.headers["Content-Security-Policy"]
    sources = {word for word in policy.replace(";", " ").split() if not word.endswith("-src")}
    assert sources <= {"'self'", "'none'", "data:", "frame-ancestors", "base-uri", "form-action"}
    initializer = client.get("/api/v1/docs/initializer.js").get_data(as_text=True)
    assert "validatorUrl: null" in initializer  # no validator badge from another host
    assert "http" not in initializer
    assert client.get("/api/v1/docs/index.j2").status_code == 404  # only the files it uses
