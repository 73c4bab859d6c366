"""`/api/v1/migrations` over HTTP: dry run, start, the worker runs it, progress and report;
access (403 / 404), bad input (400 naming the backend), a backend down (503 naming it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient, as_user

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CANARY = "sk-migration-canary-5e1d"
BODY = {"from": "local", "to": "spare", "selector": {"scope": {"type": "project", "id": "p-42"}}}


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("MIGRATION_TEST_VAULT_TOKEN", "unused")
    backends = {
        "local": {"plugin": "local"},
        "spare": {"plugin": "local"},
        # Nothing listens there: the backend is down.
        "away": {
            "plugin": "vault",
            "url": "http://127.0.0.1:9",
            "token_env": "MIGRATION_TEST_VAULT_TOKEN",
            "timeout": 1,
        },
    }
    return replace(settings, backends=backends)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["container"].shutdown_resources()


def make_secrets(api: ApiClient) -> list[str]:
    ids = []
    for number in range(3):
        secret = api.create(
            name=f"KEY_{number}", scope={"type": "project", "id": "p-42"}, value=f"{CANARY}-1"
        )
        response = api.post(f"/secrets/{secret['id']}/versions", json={"value": f"{CANARY}-2"})
        assert response.status_code in (200, 201), response.get_json()
        ids.append(secret["id"])
    return ids


def test_a_migration_is_planned_started_run_by_the_worker_and_reported(
    app: Flask, api: ApiClient
) -> None:
    ids = make_secrets(api)

    dry = api.post("/migrations/dry-run", json={**BODY, "all_versions": True})
    assert dry.status_code == 200, dry.get_json()
    assert dry.get_json()["versions"] == 6 and dry.get_json()["misfits"] == []
    assert api.get("/migrations").get_json()["items"] == []

    started = api.post("/migrations", json={**BODY, "all_versions": True, "delete_source": True})
    assert started.status_code == 202, started.get_json()
    job = started.get_json()
    assert job["state"] == "pending"
    assert job["progress"] == {"total": 3, "done": 0, "failed": 0, "remaining": 3}
    again = api.post("/migrations", json=BODY)
    assert again.status_code == 409 and job["id"] in again.get_json()["error"]["message"]

    report = app.extensions["container"].worker().run_once()
    assert report.migrations == 1

    finished = api.get(f"/migrations/{job['id']}").get_json()
    assert finished["state"] == "succeeded"
    assert finished["progress"] == {"total": 3, "done": 3, "failed": 0, "remaining": 0}
    assert finished["counters"]["versions_copied"] == 6
    assert finished["counters"]["sources_removed"] == 6
    for secret_id in ids:
        for version in (1, 2):
            read = api.get(f"/secrets/{secret_id}/value", query_string={"version": version})
            assert read.get_json()["value"] == f"{CANARY}-{version}"
        versions = api.get(f"/secrets/{secret_id}/versions").get_json()
        assert {item["backend"] for item in versions["items"]} == {"spare"}
    assert [item["id"] for item in api.get("/migrations").get_json()["items"]] == [job["id"]]
    assert CANARY not in json.dumps(finished)


def test_only_admins_of_the_scope_may_migrate(app: Flask, api: ApiClient) -> None:
    make_secrets(api)
    grant = {"principal": "user:eddie", "role": "editor", "scope": {"type": "team", "id": "t-1"}}
    assert api.post("/role-bindings", json=grant).status_code == 201
    eddie, stranger = as_user(app, "eddie"), as_user(app, "nobody")

    assert eddie.post("/migrations", json=BODY).status_code == 403
    assert stranger.post("/migrations", json=BODY).status_code == 404
    assert stranger.post("/migrations/dry-run", json=BODY).status_code == 404
    job = api.post("/migrations", json=BODY).get_json()
    assert eddie.get(f"/migrations/{job['id']}").status_code == 403
    assert stranger.get(f"/migrations/{job['id']}").status_code == 404
    assert eddie.get("/migrations").get_json()["items"] == []

    grant = {"principal": "user:ada", "role": "admin", "scope": {"type": "team", "id": "t-1"}}
    assert api.post("/role-bindings", json=grant).status_code == 201
    assert as_user(app, "ada").get(f"/migrations/{job['id']}").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [
        ({**BODY, "to": "nowhere"}, 400, "validation_error", "nowhere"),
        ({**BODY, "from": "nowhere"}, 400, "validation_error", "nowhere"),
        ({**BODY, "to": "local"}, 400, "validation_error", "same backend"),
        ({**BODY, "surprise": 1}, 400, "validation_error", "surprise"),
        ({"to": "spare"}, 400, "validation_error", "from"),
        ({**BODY, "to": "away"}, 503, "backend_unavailable", "'away'"),
        (
            {**BODY, "selector": {"scope": {"type": "project", "id": "p-404"}}},
            404,
            "not_found",
            "p-404",
        ),
    ],
)
def test_bad_requests_are_refused_clearly(
    api: ApiClient, body: dict[str, Any], status: int, code: str, named: str
) -> None:
    response = api.post("/migrations", json=body)

    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert named in json.dumps(error)


def test_an_unknown_migration_is_404(api: ApiClient) -> None:
    response = api.get("/migrations/6f0c3d52-5b8e-4d51-9a36-2c1e7b9f4a10")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_the_openapi_document_describes_migrations(api: ApiClient) -> None:
    paths = api.get("/openapi.json").get_json()["paths"]
    assert {"/api/v1/migrations", "/api/v1/migrations/dry-run"} <= set(paths)
    assert "/api/v1/migrations/{job_id}" in paths
