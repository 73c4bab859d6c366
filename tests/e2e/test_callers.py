"""Who calls and from which request travel together, as a `Caller`: one audit trail and one
instance of each use case serve every request, and each request's events carry its own facts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from dependency_injector import providers
from flask import Flask

from core.backends import BackendRegistry
from core.domain.values import VersionKey
from entrypoints.container import USE_CASES, reset_use_cases
from tests.e2e.conftest import TOKEN, ApiClient
from tests.fakes import InMemoryBackend

P42 = {"type": "project", "id": "p-42"}


class PausingBackend(InMemoryBackend):
    """Holds a value read of the secret `paused` inside the use case until released."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.paused: UUID | None = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def get(self, key: VersionKey, locator: str) -> Any:
        if key.secret_id == self.paused:
            self.reached.set()
            assert self.release.wait(30)
        return super().get(key, locator)


@pytest.fixture
def pausing(app: Flask) -> Iterator[PausingBackend]:
    container = app.extensions["container"]
    backend = PausingBackend("local")
    container.backends.override(providers.Object(BackendRegistry({"local": backend}, "local")))
    reset_use_cases(container)
    yield backend
    backend.release.set()
    container.backends.reset_override()
    reset_use_cases(container)


def test_the_use_cases_and_the_audit_trail_are_built_once(app: Flask) -> None:
    container = app.extensions["container"]
    for name in USE_CASES:
        assert getattr(container, name)() is getattr(container, name)(), name


def test_two_concurrent_requests_each_stamp_their_own_facts_on_their_events(
    app: Flask, api: ApiClient, pausing: PausingBackend
) -> None:
    first = api.create(name="FIRST", scope=P42, value="one")["id"]
    second = api.create(name="SECOND", scope=P42, value="two")["id"]
    pausing.paused = UUID(first)
    answers: dict[str, Any] = {}

    def read_first() -> None:
        facts = {"X-Request-Id": "req-first", "User-Agent": "agent-first"}
        answers["first"] = api.get(f"/secrets/{first}/value", headers=facts)

    reader = threading.Thread(target=read_first)
    reader.start()
    assert pausing.reached.wait(30)  # the first request is inside the read use case now
    facts = {"X-Request-Id": "req-second", "User-Agent": "agent-second"}
    value = api.get(f"/secrets/{second}/value", headers=facts)  # the fast route
    metadata = api.get(f"/secrets/{second}", headers=facts)  # a route of Flask's
    pausing.release.set()
    reader.join(30)

    assert (value.status_code, metadata.status_code, answers["first"].status_code) == (200,) * 3
    assert answers["first"].get_json()["value"] == "one"
    events = api.get("/audit/events", query_string={"limit": "1000"}).get_json()["items"]
    stamped = {
        (event["action"], event["resource"], event["request_id"], event["user_agent"])
        for event in events
        if event["request_id"] in ("req-first", "req-second")
    }
    assert stamped == {
        ("secret.read_value", f"secret:{first}", "req-first", "agent-first"),
        ("secret.read_value", f"secret:{second}", "req-second", "agent-second"),
        ("secret.read_metadata", f"secret:{second}", "req-second", "agent-second"),
    }


def test_the_vault_routes_stamp_their_request_facts_too(app: Flask, api: ApiClient) -> None:
    """The KV v2 routes authenticate on their own (`X-Vault-Token`): the same Caller."""
    created = api.create(name="ESO", scope=P42, value="v")["id"]
    facts = {"X-Vault-Token": TOKEN, "X-Request-Id": "req-vault", "User-Agent": "vault-client"}
    read = app.test_client().get("/v1/secret/data/project/p-42/_/ESO", headers=facts)

    assert read.status_code == 200
    events = api.get("/audit/events", query_string={"limit": "1000"}).get_json()["items"]
    assert {
        (event["action"], event["resource"], event["user_agent"])
        for event in events
        if event["request_id"] == "req-vault"
    } == {("secret.read_value", f"secret:{created}", "vault-client")}
