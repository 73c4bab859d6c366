"""Attacks on access control (issue #14), over HTTP: each test is one attack, refused.

- A revoked API token, a deleted service account or a removed binding keep no power for a
  moment in another worker (two apps on one database stand for two processes, each with its
  own token cache): the other worker's very next request is refused, read or write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient

VALUE = "attack-value-5d1e"


@pytest.fixture
def worker_b(settings: Settings) -> Iterator[Flask]:
    other = create_app(settings)
    yield other
    other.extensions["container"].shutdown_resources()


@pytest.fixture
def ops(app: Flask, worker_b: Flask, api: ApiClient) -> dict[str, Any]:
    """A service account `ops`, admin of the global scope, with a token that worker A has in
    its token cache; `b` is the root caller through worker B."""
    secret = api.create(name="DB_PASSWORD", scope={"type": "project", "id": "p-42"}, value=VALUE)
    account = api.post(
        "/service-accounts", json={"name": "ops", "scope": {"type": "global"}}
    ).get_json()
    binding = api.post(
        "/role-bindings",
        json={"principal": "service:ops", "role": "admin", "scope": {"type": "global"}},
    ).get_json()
    token = api.post(f"/service-accounts/{account['id']}/tokens", json={}).get_json()
    a = ApiClient(app.test_client(), token=token["token"])
    cache = app.extensions["container"].read_cache()
    for _ in range(3):  # until worker A answers from its token cache
        hits = cache.hits
        assert a.get(f"/secrets/{secret['id']}/value").status_code == 200
        if cache.hits > hits:
            break
    else:
        raise AssertionError(f"worker A never cached the token: {cache!r}")
    return {
        "secret": secret,
        "account": account,
        "binding": binding,
        "token": token,
        "a": a,
        "b": ApiClient(worker_b.test_client()),
    }


# What the holder of the token tries next through worker A: reads, writes, and minting a
# token of its own.
NEXT_REQUESTS = {
    "list secrets": ("GET", "/secrets", None),
    "read metadata": ("GET", "/secrets/{secret}", None),
    "read the value": ("GET", "/secrets/{secret}/value", None),
    "read a version": ("GET", "/secrets/{secret}/value?version=1", None),
    "list versions": ("GET", "/secrets/{secret}/versions", None),
    "resolve": ("GET", "/resolve?project=p-42&include_values=true", None),
    "list scopes": ("GET", "/scopes", None),
    "list migrations": ("GET", "/migrations", None),
    "read the audit trail": ("GET", "/audit/events", None),
    "create a secret": (
        "POST",
        "/secrets",
        {"name": "PLANTED", "scope": {"type": "project", "id": "p-42"}, "value": "x"},
    ),
    "write a version": ("POST", "/secrets/{secret}/versions", {"value": "planted"}),
    "change metadata": ("PATCH", "/secrets/{secret}", {"description": "planted"}),
    "delete the secret": ("DELETE", "/secrets/{secret}", None),
    "mint a token": ("POST", "/service-accounts/{account}/tokens", {}),
    "grant a role": (
        "POST",
        "/role-bindings",
        {"principal": "user:mallory", "role": "admin", "scope": {"type": "global"}},
    ),
}


def attempt(ops: dict[str, Any], request: str) -> Any:
    method, path, body = NEXT_REQUESTS[request]
    path = path.format(secret=ops["secret"]["id"], account=ops["account"]["id"])
    return ops["a"].request(method, path, **({} if body is None else {"json": body}))


def assert_nothing_changed(ops: dict[str, Any]) -> None:
    b = ops["b"]
    secret = b.get(f"/secrets/{ops['secret']['id']}").get_json()
    assert (secret["current_version"], secret["description"]) == (1, "")
    assert b.get("/secrets?prefix=PLANTED").get_json()["total"] == 0
    assert len(b.get(f"/service-accounts/{ops['account']['id']}/tokens").get_json()) <= 1
    granted = b.get("/role-bindings?principal=user:mallory").get_json()
    assert granted["total"] == 0


@pytest.mark.parametrize("request_kind", sorted(NEXT_REQUESTS))
def test_a_token_revoked_in_another_worker_is_refused_at_once(ops, request_kind) -> None:
    revoked = ops["b"].delete(
        f"/service-accounts/{ops['account']['id']}/tokens/{ops['token']['id']}"
    )
    assert revoked.status_code == 204

    refused = attempt(ops, request_kind)

    assert refused.status_code == 401, refused.get_json()
    assert refused.get_json()["error"]["code"] == "unauthenticated"
    assert VALUE not in refused.get_data(as_text=True)
    assert_nothing_changed(ops)


@pytest.mark.parametrize(
    "request_kind", ["create a secret", "write a version", "mint a token", "list secrets"]
)
def test_a_service_account_deleted_in_another_worker_is_refused_at_once(ops, request_kind) -> None:
    assert ops["b"].delete(f"/service-accounts/{ops['account']['id']}").status_code == 204

    refused = attempt(ops, request_kind)

    assert refused.status_code == 401, refused.get_json()
    assert ops["b"].get("/secrets?prefix=PLANTED").get_json()["total"] == 0
    assert ops["b"].get(f"/secrets/{ops['secret']['id']}").get_json()["current_version"] == 1


@pytest.mark.parametrize(
    "request_kind", ["create a secret", "write a version", "mint a token", "read the value"]
)
def test_a_binding_removed_in_another_worker_grants_nothing_more(ops, request_kind) -> None:
    assert ops["b"].delete(f"/role-bindings/{ops['binding']['id']}").status_code == 204

    refused = attempt(ops, request_kind)

    assert refused.status_code == 404, refused.get_json()
    assert VALUE not in refused.get_data(as_text=True)
    assert ops["b"].get("/secrets?prefix=PLANTED").get_json()["total"] == 0
    assert ops["b"].get(f"/secrets/{ops['secret']['id']}").get_json()["current_version"] == 1
