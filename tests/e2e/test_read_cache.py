"""The read cache never serves what a committed change replaced.

Two apps on one database stand for two server workers: each has its own read cache and its
own group commit. A service account reads through worker A until A serves the value from its
cache; the change is then made through worker B (which A's process does not hear about), and
A's next read must reflect it: a rotation, a disabled version, a deleted secret, a removed
binding, a revoked token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient, as_user

FIRST, SECOND = "first-value-7f3a", "second-value-9c21"


@pytest.fixture
def worker_b(settings: Settings) -> Iterator[Flask]:
    other = create_app(settings)
    yield other
    other.extensions["container"].shutdown_resources()


@pytest.fixture
def setup(app: Flask, worker_b: Flask, api: ApiClient) -> dict[str, Any]:
    """A secret in project p-42, and a service account `reader` holding a reader binding on
    its team, with a token; `a` reads through worker A, `admin_b` changes through worker B."""
    secret = api.create(name="DB_PASSWORD", scope={"type": "project", "id": "p-42"}, value=FIRST)
    account = api.post(
        "/service-accounts", json={"name": "reader", "scope": {"type": "team", "id": "t-1"}}
    ).get_json()
    binding = api.post(
        "/role-bindings",
        json={
            "principal": account["principal"],  # service:reader@team:t-1
            "role": "reader",
            "scope": {"type": "team", "id": "t-1"},
        },
    ).get_json()
    token = api.post(f"/service-accounts/{account['id']}/tokens", json={}).get_json()
    return {
        "secret": secret,
        "account": account,
        "binding": binding,
        "token": token,
        "a": ApiClient(app.test_client(), token=token["token"]),
        "admin_b": ApiClient(worker_b.test_client()),
    }


def cache_of(app: Flask) -> Any:
    return app.extensions["container"].read_cache()


def read_until_cached(app: Flask, client: ApiClient, path: str) -> Any:
    """Read until worker A answers from its cache (the first read fills it)."""
    cache = cache_of(app)
    for _ in range(3):
        hits = cache.hits
        response = client.get(path)
        assert response.status_code == 200, response.get_json()
        if cache.hits > hits:
            return response.get_json()
    raise AssertionError(f"worker A never served {path} from its cache: {cache!r}")


def revoke_and_refuse(setup: dict[str, Any], path: str) -> None:
    """Revoke worker A's token through worker B: A's next request to `path` is refused, and
    nothing of the value is in the answer."""
    revoked = setup["admin_b"].delete(
        f"/service-accounts/{setup['account']['id']}/tokens/{setup['token']['id']}"
    )
    assert revoked.status_code == 204
    refused = setup["a"].get(path)
    assert refused.status_code == 401
    assert FIRST not in refused.get_data(as_text=True)


def value_path(setup: dict[str, Any]) -> str:
    return f"/secrets/{setup['secret']['id']}/value"


def test_a_rotation_through_another_worker_is_seen_at_once(app, setup) -> None:
    path = value_path(setup)
    assert read_until_cached(app, setup["a"], path)["value"] == FIRST
    written = setup["admin_b"].post(
        f"/secrets/{setup['secret']['id']}/versions", json={"value": SECOND}
    )
    assert written.status_code == 201

    after = setup["a"].get(path).get_json()
    assert (after["value"], after["version"]) == (SECOND, 2)
    by_path = "/scopes/project/p-42/secrets/DB_PASSWORD/value"
    assert read_until_cached(app, setup["a"], by_path)["value"] == SECOND
    third = setup["admin_b"].post(
        f"/secrets/{setup['secret']['id']}/versions", json={"value": FIRST}
    )
    assert third.status_code == 201
    assert setup["a"].get(by_path).get_json()["version"] == 3


def test_a_disabled_version_is_refused_at_once(app, setup) -> None:
    path = value_path(setup)
    setup["admin_b"].post(f"/secrets/{setup['secret']['id']}/versions", json={"value": SECOND})
    pinned = f"{path}?version=1"
    assert read_until_cached(app, setup["a"], pinned)["value"] == FIRST
    disabled = setup["admin_b"].post(f"/secrets/{setup['secret']['id']}/versions/1/disable")
    assert disabled.status_code == 200, disabled.get_json()

    refused = setup["a"].get(pinned)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"]["state"] == "disabled"
    assert FIRST not in refused.get_data(as_text=True)


def test_a_deleted_secret_is_gone_at_once(app, setup) -> None:
    path = value_path(setup)
    read_until_cached(app, setup["a"], path)
    assert setup["admin_b"].delete(f"/secrets/{setup['secret']['id']}").status_code == 200

    gone = setup["a"].get(path)
    assert gone.status_code == 404
    assert FIRST not in gone.get_data(as_text=True)


def test_a_removed_binding_stops_reads_at_once(app, setup) -> None:
    path = value_path(setup)
    read_until_cached(app, setup["a"], path)
    removed = setup["admin_b"].delete(f"/role-bindings/{setup['binding']['id']}")
    assert removed.status_code == 204

    refused = setup["a"].get(path)
    assert refused.status_code == 404
    assert FIRST not in refused.get_data(as_text=True)


def test_a_revoked_token_reads_nothing_more(app, setup) -> None:
    path = value_path(setup)
    read_until_cached(app, setup["a"], path)
    revoke_and_refuse(setup, path)


def test_a_change_in_the_same_worker_empties_its_cache(app, api, setup) -> None:
    path = value_path(setup)
    read_until_cached(app, setup["a"], path)
    assert len(cache_of(app)) > 0
    api.post(f"/secrets/{setup['secret']['id']}/versions", json={"value": SECOND})

    assert len(cache_of(app)) == 0
    assert setup["a"].get(path).get_json()["value"] == SECOND


def test_concurrent_reads_share_audit_transactions(app, setup) -> None:
    """Group commit: every read is audited before it is answered, in fewer transactions."""
    path = value_path(setup)
    read_until_cached(app, setup["a"], path)
    group = app.extensions["container"].audit_group()
    batches, events = group.batches, group.events
    barrier, statuses = threading.Barrier(24), []

    def read() -> None:
        client = ApiClient(app.test_client(), token=setup["token"]["token"])
        barrier.wait()
        statuses.append(client.get(path).status_code)

    threads = [threading.Thread(target=read) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 24
    assert group.events - events == 24
    assert group.batches - batches < 24
    verified = setup["admin_b"].post("/audit/verify", json={})
    assert verified.get_json()["ok"] is True


# -- resolution: the same guarantees for a whole context ----------------------------------

RESOLVE = "/resolve?project=p-42&include_values=true"


def resolved_value(response: Any) -> str | None:
    return resolved_value_of(response.get_json())


def test_a_resolution_sees_a_rotation_through_another_worker_at_once(app, setup) -> None:
    assert resolved_value_of(read_until_cached(app, setup["a"], RESOLVE)) == FIRST
    written = setup["admin_b"].post(
        f"/secrets/{setup['secret']['id']}/versions", json={"value": SECOND}
    )
    assert written.status_code == 201
    assert resolved_value(setup["a"].get(RESOLVE)) == SECOND


def test_a_resolution_drops_a_deleted_secret_at_once(app, setup) -> None:
    read_until_cached(app, setup["a"], RESOLVE)
    assert setup["admin_b"].delete(f"/secrets/{setup['secret']['id']}").status_code == 200
    after = setup["a"].get(RESOLVE)
    assert after.status_code == 200 and resolved_value(after) is None
    assert FIRST not in after.get_data(as_text=True)


def test_a_resolution_stops_at_once_when_the_binding_is_removed(app, setup) -> None:
    read_until_cached(app, setup["a"], RESOLVE)
    removed = setup["admin_b"].delete(f"/role-bindings/{setup['binding']['id']}")
    assert removed.status_code == 204
    after = setup["a"].get(RESOLVE)
    assert after.status_code == 200 and FIRST not in after.get_data(as_text=True)


def test_a_resolution_with_a_revoked_token_is_refused(app, setup) -> None:
    read_until_cached(app, setup["a"], RESOLVE)
    revoke_and_refuse(setup, RESOLVE)


def test_a_revoked_token_resolves_nothing_even_what_was_never_cached(app, setup) -> None:
    """The token's lookup is cached (5 s at most) while the context is not: the resolution
    still requires the generation of that lookup, so the revocation is seen at once."""
    read_until_cached(app, setup["a"], value_path(setup))  # the token's lookup, cached
    revoke_and_refuse(setup, "/resolve?team=t-1&include_values=true")


def test_a_cached_resolution_ends_when_a_binding_of_the_caller_expires(
    app, setup, api: ApiClient
) -> None:
    """An expiry is no change to commit: the cached answer lives no longer than the binding."""
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    granted = api.post(
        "/role-bindings",
        json={
            "principal": "user:ivy",
            "role": "reader",
            "scope": {"type": "team", "id": "t-1"},
            "expires_at": soon,
        },
    )
    assert granted.status_code == 201, granted.get_json()
    ivy = as_user(app, "ivy")
    assert resolved_value_of(read_until_cached(app, ivy, RESOLVE)) == FIRST
    time.sleep(2.2)
    after = ivy.get(RESOLVE)
    assert after.status_code == 200 and FIRST not in after.get_data(as_text=True)


def resolved_value_of(body: dict[str, Any]) -> str | None:
    items = [i for i in body["items"] if i["name"] == "DB_PASSWORD"]
    return items[0]["value"] if items else None
