"""The hot value reads answered outside Flask's dispatch (`entrypoints/http/hot_reads.py`) answer
exactly what the Flask views answer: each request goes both ways and status, body, headers and
the audit event it left must be the same."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client
from werkzeug.wrappers import Response

from adapters.db.uow import SqlUnitOfWork
from entrypoints.http.app import create_app
from entrypoints.http.hot_reads import HotReads
from tests.e2e.conftest import TOKEN, ApiClient, user_token

VALUE = "hot-path-value-3d8e"
COMPARED_HEADERS = ("Content-Type", "Cache-Control", "X-Request-Id", "WWW-Authenticate", "ETag")


@pytest.fixture
def world(app: Flask, api: ApiClient) -> dict[str, Any]:
    secret = api.create(name="DB_PASSWORD", scope={"type": "project", "id": "p-42"}, value=VALUE)
    account = api.post(
        "/service-accounts", json={"name": "reader", "scope": {"type": "team", "id": "t-1"}}
    ).get_json()
    api.post(
        "/role-bindings",
        json={
            "principal": account["principal"],  # service:reader@team:t-1
            "role": "reader",
            "scope": {"type": "team", "id": "t-1"},
        },
    )
    token = api.post(f"/service-accounts/{account['id']}/tokens", json={}).get_json()["token"]
    return {"secret": secret, "token": token}


EVENT_FIELDS = (
    "actor",
    "action",
    "resource",
    "outcome",
    "reason",
    "scope",
    "version",
    "request_id",
    "source_ip",
    "user_agent",
    "details",
)


def events_of(app: Flask, send: Callable[[], Any]) -> list[dict[str, Any]]:
    """The audit events `send()` left (their chain fields and times aside)."""
    engine = app.extensions["container"].engine()
    with SqlUnitOfWork(engine, read_only=True) as uow:
        before, _ = uow.audit.head()
    send()
    with SqlUnitOfWork(engine) as uow:  # events are streamed: a transaction
        new = list(uow.audit.events(before + 1))
    return [{name: getattr(event, name) for name in EVENT_FIELDS} for event in new]


def assert_same(
    app: Flask, path: str, headers: dict[str, str], status: int
) -> tuple[Any, list[dict[str, Any]]]:
    headers = {"X-Request-Id": "compare-1", "User-Agent": "hot-test/1.0", **headers}
    hot = app.wsgi_app
    assert isinstance(hot, HotReads)
    served = hot.served
    answers: dict[str, Response] = {}
    hot_events = events_of(
        app, lambda: answers.setdefault("hot", Client(app, Response).get(path, headers=headers))
    )
    assert hot.served == served + 1, f"{path} was not answered by the hot path"
    flask_events = events_of(
        app,
        lambda: answers.setdefault(
            "flask", Client(hot.flask_app, Response).get(path, headers=headers)
        ),
    )
    assert hot.served == served + 1
    through_hot, through_flask = answers["hot"], answers["flask"]
    assert (through_hot.status_code, through_flask.status_code) == (status, status)
    assert through_hot.get_data() == through_flask.get_data()
    for name in COMPARED_HEADERS:
        assert through_hot.headers.get(name) == through_flask.headers.get(name), name
    assert through_hot.headers["Content-Length"] == through_flask.headers["Content-Length"]
    assert hot_events == flask_events
    return through_hot.get_json(), hot_events


Scenario = Callable[[dict[str, Any]], tuple[str, dict[str, str], int]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SCENARIOS: dict[str, Scenario] = {
    "by id": lambda w: (f"/api/v1/secrets/{w['secret']['id']}/value", bearer(w["token"]), 200),
    "by id, upper case": lambda w: (
        f"/api/v1/secrets/{w['secret']['id'].upper()}/value",
        bearer(w["token"]),
        200,
    ),
    "by path": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/DB_PASSWORD/value",
        bearer(w["token"]),
        200,
    ),
    "root by path": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/DB_PASSWORD/value",
        bearer(TOKEN),
        200,
    ),
    "a user without a binding": lambda w: (
        f"/api/v1/secrets/{w['secret']['id']}/value",
        bearer(user_token("nobody")),
        404,
    ),
    "no such secret": lambda w: (f"/api/v1/secrets/{uuid.uuid4()}/value", bearer(TOKEN), 404),
    "no such name": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/NOPE/value",
        bearer(TOKEN),
        404,
    ),
    "no such scope type": lambda w: (
        "/api/v1/scopes/planet/p-42/secrets/X/value",
        bearer(TOKEN),
        400,
    ),
    "no token": lambda w: (f"/api/v1/secrets/{w['secret']['id']}/value", {}, 401),
    "a name in unicode": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/café/value",
        bearer(TOKEN),
        404,
    ),
    "a name in unicode, no token": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/café/value",
        {},
        401,
    ),
    "not a bearer token": lambda w: (
        f"/api/v1/secrets/{w['secret']['id']}/value",
        {"Authorization": "Basic dXNlcjpwYXNz"},
        401,
    ),
    "a wrong token": lambda w: (
        f"/api/v1/secrets/{w['secret']['id']}/value",
        bearer("smt_not-a-real-token"),
        401,
    ),
    "a NUL in the name": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/DB%00PASSWORD/value",
        bearer(TOKEN),
        400,
    ),
    "a NUL in the scope id": lambda w: (
        "/api/v1/scopes/project/p%0042/secrets/DB_PASSWORD/value",
        bearer(TOKEN),
        400,
    ),
    "a NUL in the name, no token": lambda w: (
        "/api/v1/scopes/project/p-42/secrets/DB%00PASSWORD/value",
        {},
        401,
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_hot_path_answers_what_flask_answers(
    app: Flask, world: dict[str, Any], scenario: str
) -> None:
    path, headers, status = SCENARIOS[scenario](world)
    body, events = assert_same(app, path, headers, status)
    if status == 200:
        assert body["value"] == VALUE
        [event] = events
        assert (event["action"], event["outcome"]) == ("secret.read_value", "success")
    else:
        assert VALUE not in str(body)
        assert body["error"]["request_id"] == "compare-1"
    if status == 400:  # refused before any use case ran: no event either way
        assert events == []
    else:
        assert [(e["request_id"], e["user_agent"]) for e in events] == [
            ("compare-1", "hot-test/1.0")
        ]


@pytest.mark.parametrize(
    "request_line",
    [
        ("GET", "/api/v1/secrets/{id}/value?version=1"),
        ("GET", "/api/v1/scopes/project/p-42/secrets/DB_PASSWORD/value?environment=prod"),
        ("HEAD", "/api/v1/secrets/{id}/value"),
        ("GET", "/api/v1/secrets/{id}/value/"),
        ("GET", "/api/v1/secrets/not-a-uuid/value"),
        ("GET", "/api/v1/secrets/{id}"),
        ("POST", "/api/v1/secrets/{id}/value"),
    ],
)
def test_everything_else_goes_to_flask(
    app: Flask, world: dict[str, Any], request_line: tuple[str, str]
) -> None:
    method, template = request_line
    hot = app.wsgi_app
    assert isinstance(hot, HotReads)
    served = hot.served
    path = template.format(id=world["secret"]["id"])
    response = Client(app, Response).open(path, method=method, headers=bearer(TOKEN))
    assert hot.served == served
    assert response.status_code != 500


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/scopes/project/p-42/secrets/" + "N" * 256 + "/value", 404),
        ("GET", "/api/v1/scopes/project/" + "p" * 129 + "/secrets/DB_PASSWORD/value", 404),
        ("PUT", "/api/v1/secrets/{id}/value", 405),
        ("DELETE", "/api/v1/scopes/project/p-42/secrets/DB_PASSWORD/value", 405),
    ],
)
def test_what_flask_routes_nowhere_the_hot_path_leaves_to_flask(
    app: Flask, world: dict[str, Any], method: str, path: str, status: int
) -> None:
    """Names and ids longer than their columns match no route (404), other methods are 405
    with `Allow`: the hot path takes none of them, so the answers are Flask's."""
    hot = app.wsgi_app
    assert isinstance(hot, HotReads)
    served = hot.served
    response = Client(app, Response).open(
        path.format(id=world["secret"]["id"]), method=method, headers=bearer(TOKEN)
    )
    assert hot.served == served
    assert response.status_code == status
    if status == 405:
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"  # sorted


def test_a_request_hook_it_would_skip_turns_the_hot_path_off(settings: Any) -> None:
    """Somebody adds a before_request hook later: the hot path must not skip it silently."""
    from entrypoints.http import app as app_module

    app = app_module.create_app(settings)
    try:
        hot = app.wsgi_app
        assert isinstance(hot, HotReads) and hot.enabled
        app.before_request(lambda: None)  # e.g. a rate limit
        again = HotReads(
            app,
            hot.flask_app,
            before=(app_module.start_request, app_module.authenticate),
            after=(app_module.finish_request,),
        )
        assert not again.enabled
        served = again.served
        Client(again, Response).get(f"/api/v1/secrets/{uuid.uuid4()}/value", headers=bearer(TOKEN))
        assert again.served == served
    finally:
        app.extensions["container"].shutdown_resources()


def test_the_hot_path_routes_with_flasks_url_map(settings: Any) -> None:
    """The hot path answers a request only when Flask's own URL map names a hot endpoint: a
    route added in front of it, or a host Flask does not trust, is Flask's to answer."""
    app = create_app(settings)
    try:
        hot = app.wsgi_app
        assert isinstance(hot, HotReads) and hot.enabled
        shadowed = f"/api/v1/secrets/{uuid.uuid4()}/value"
        app.add_url_rule(shadowed, "shadow", lambda: {"shadowed": True})  # a static rule wins
        client = Client(app.wsgi_app, Response)
        served = hot.served
        answer = client.get(shadowed, headers=bearer(TOKEN))
        assert (answer.status_code, answer.get_json(), hot.served) == (
            200,
            {"shadowed": True},
            served,
        )
        missing = f"/api/v1/secrets/{uuid.uuid4()}/value"
        assert client.get(missing, headers=bearer(TOKEN)).status_code == 404
        assert hot.served == served + 1  # the rule beside it is still the hot path's
        app.config["TRUSTED_HOSTS"] = ["secrets.internal"]
        assert client.get(missing, headers=bearer(TOKEN)).status_code == 400  # Flask's answer
        assert hot.served == served + 1
        trusted = client.get(missing, headers=bearer(TOKEN) | {"Host": "secrets.internal"})
        assert (trusted.status_code, hot.served) == (404, served + 2)
    finally:
        app.extensions["container"].shutdown_resources()
