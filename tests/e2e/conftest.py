"""The whole app (real container, plugins, database and local backend) behind Flask's client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from entrypoints.config import Settings
from entrypoints.http.app import create_app

TOKEN = "e2e-root-token-0123456789"


JWT_KEY = "e2e-shared-jwt-signing-key-0123456789abcdef"
ISSUER = "https://idp.test"
AUDIENCE = "secret-management"


def user_token(subject: str, groups: tuple[str, ...] = (), **claims: Any) -> str:
    """A JWT of the test identity provider (HS256, shared key), valid for five minutes."""
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "groups": list(groups)}
    payload |= {"iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, JWT_KEY, algorithm="HS256")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TEST_JWT_KEY", JWT_KEY)
    return Settings(
        identity={
            "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "shared_key_env": "TEST_JWT_KEY"}
        },
        data_dir=tmp_path,
        database_url=database_url,
        dev_root_token=TOKEN,
        keys={"provider": "file", "path": str(tmp_path / "master.key")},
        log_level="DEBUG",
        max_request_bytes=256 * 1024,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["container"].shutdown_resources()


class ApiClient:
    """Flask's test client with the bearer token and JSON by default."""

    def __init__(self, client: FlaskClient, token: str | None = TOKEN) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def register_scope(self, kind: str, scope_id: str, parent: tuple[str, str]) -> None:
        body = {"type": kind, "id": scope_id, "parent": {"type": parent[0], "id": parent[1]}}
        response = self.post("/scopes", json=body)
        assert response.status_code == 201, response.get_json()

    def create(self, **body: Any) -> Any:
        response = self.post("/secrets", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()


def as_user(app: Flask, subject: str, groups: tuple[str, ...] = ()) -> ApiClient:
    return ApiClient(app.test_client(), token=user_token(subject, groups))


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """The root caller, with a small hierarchy: organization acme > team t-1 > project p-42."""
    client = ApiClient(app.test_client())
    client.register_scope("organization", "acme", ("global", "global"))
    client.register_scope("team", "t-1", ("organization", "acme"))
    client.register_scope("project", "p-42", ("team", "t-1"))
    return client
