"""Attacks on access control (issue #14), over HTTP: each test is one attack, refused.

- A revoked API token, a deleted service account or a removed binding keep no power for a
  moment in another worker (two apps on one database stand for two processes, each with its
  own token cache): the other worker's very next request is refused, read or write.
- A personal scope is its user's alone, for writes too: neither the root nor a global admin
  plants a value (adopted, created, imported) that would win its user's resolution.
- Nobody claims a scope id without the admin role at its parent (an editor's secret no longer
  creates `project/p-99` for its organization), and no answer tells another tenant that an id,
  a service-account name or a migration exists where it cannot see.
- Destroying a version for good takes an admin, as a purge does (no longer an editor).

Writers without `If-Match` that must each land are in
tests/integration/test_lifecycle_concurrency.py (50 threads, SQLite and PostgreSQL).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from flask import Flask

from core.backends import BackendRegistry
from entrypoints.config import Settings
from entrypoints.container import reset_use_cases
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient, as_user
from tests.fakes import AdoptableBackend

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
    "ask who it is": ("GET", "/auth/whoami", None),
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


# -- personal scopes -------------------------------------------------------------------------

PLANTED = "planted-by-someone-else-91c2"
CAROLS = {"type": "user", "id": "carol"}


@pytest.fixture
def store(app: Flask) -> Iterator[AdoptableBackend]:
    """A second backend instance, `store`, holding a value someone put there before."""
    container = app.extensions["container"]
    backend = AdoptableBackend("store", max_value_bytes=1024)
    backend.external = {"apps/DB_PASSWORD": PLANTED.encode()}
    local = container.backends().get("local")
    container.backends.override(
        providers.Object(BackendRegistry({"local": local, "store": backend}, default="local"))
    )
    reset_use_cases(container)
    yield backend
    container.backends.reset_override()
    reset_use_cases(container)


@pytest.fixture
def carol(app: Flask, api: ApiClient) -> ApiClient:
    """Carol, reader of project p-42 (whose DB_PASSWORD she resolves), with her own secret in
    her personal scope, and a global admin `user:gadmin`."""
    api.create(name="DB_PASSWORD", scope={"type": "project", "id": "p-42"}, value=VALUE)
    for principal, role in (("user:carol", "reader"), ("user:gadmin", "admin")):
        granted = api.post(
            "/role-bindings",
            json={"principal": principal, "role": role, "scope": {"type": "global"}},
        )
        assert granted.status_code == 201, granted.get_json()
    client = as_user(app, "carol")
    assert client.post("/secrets", json={"name": "OWN", "scope": CAROLS, "value": "mine"})
    return client


def carols_answer(carol: ApiClient) -> dict[str, str]:
    resolved = carol.get("/resolve?project=p-42&include_values=true").get_json()
    return {item["name"]: item["value"] for item in resolved["items"]}


@pytest.mark.parametrize("who", ["root", "global admin"])
def test_nobody_adopts_into_someone_elses_personal_scope(
    app: Flask, api: ApiClient, store: AdoptableBackend, carol: ApiClient, who: str
) -> None:
    caller = api if who == "root" else as_user(app, "gadmin")
    for parent in ({}, {"parent": {"type": "global"}}):
        scope = {**CAROLS, **parent}
        adopted = caller.post("/backends/store/adopt", json={"prefix": "apps/", "scope": scope})
        assert adopted.status_code == 404, adopted.get_json()
    created = caller.post(
        "/secrets", json={"name": "DB_PASSWORD", "scope": CAROLS, "value": PLANTED}
    )
    assert created.status_code == 404, created.get_json()
    imported = caller.post(
        "/imports",
        data={
            "scope_type": "user",
            "scope_id": "carol",
            "file": (io.BytesIO(f"DB_PASSWORD={PLANTED}\n".encode()), "x.env"),
        },
        content_type="multipart/form-data",
    )
    assert imported.status_code == 404, imported.get_json()

    assert carols_answer(carol) == {"DB_PASSWORD": VALUE, "OWN": "mine"}


def test_a_user_adopts_into_their_own_personal_scope(
    app: Flask, api: ApiClient, store: AdoptableBackend, carol: ApiClient
) -> None:
    api.post(
        "/role-bindings",
        json={"principal": "user:carol", "role": "admin", "scope": {"type": "global"}},
    )
    adopted = carol.post("/backends/store/adopt", json={"prefix": "apps/", "scope": CAROLS})
    assert adopted.status_code == 200, adopted.get_json()
    assert carols_answer(carol)["DB_PASSWORD"] == PLANTED


# -- claiming scope ids, service-account names, migrations ---------------------------------

TENANT_A = {"type": "organization", "id": "tenant-a"}
TENANT_B = {"type": "organization", "id": "tenant-b"}


@pytest.fixture
def tenants(app: Flask, api: ApiClient) -> dict[str, ApiClient]:
    """Two organizations: alice administers tenant-a, bob tenant-b, eve edits tenant-a; rita
    reads everything."""
    for tenant in (TENANT_A, TENANT_B):
        api.register_scope("organization", tenant["id"], ("global", "global"))
    for principal, role, scope in (
        ("user:alice", "admin", TENANT_A),
        ("user:bob", "admin", TENANT_B),
        ("user:eve", "editor", TENANT_A),
        ("user:ed", "editor", TENANT_B),
        ("user:rita", "reader", {"type": "global"}),
    ):
        granted = api.post(
            "/role-bindings", json={"principal": principal, "role": role, "scope": scope}
        )
        assert granted.status_code == 201, granted.get_json()
    return {name: as_user(app, name) for name in ("alice", "bob", "eve", "ed", "rita")}


def new_secret(project: str, parent: dict[str, str], value: str = PLANTED) -> dict[str, Any]:
    scope = {"type": "project", "id": project, "parent": parent}
    return {"name": "DB_PASSWORD", "scope": scope, "value": value}


def test_an_editor_claims_no_project_id_for_its_organization(
    api: ApiClient, tenants: dict[str, ApiClient]
) -> None:
    squat = tenants["eve"].post("/secrets", json=new_secret("p-99", TENANT_A))
    assert squat.status_code == 403, squat.get_json()
    assert squat.get_json()["error"]["code"] == "forbidden"
    assert api.get("/scopes/project/p-99").status_code == 404  # nothing was created

    # the real owner creates it later below its organization; the reader resolves its values
    assert (
        tenants["bob"].post("/secrets", json=new_secret("p-99", TENANT_B, VALUE)).status_code == 201
    )
    resolved = tenants["rita"].get("/resolve?project=p-99&include_values=true").get_json()
    assert [item["value"] for item in resolved["items"]] == [VALUE]


def refusal(response: Any) -> tuple[int, str, str]:
    """An answer with the caller's own name taken out, to compare two callers' answers."""
    error = response.get_json()["error"]
    message = error["message"].replace("user:bob", "user:X").replace("user:ed", "user:X")
    return response.status_code, error["code"], message


def test_an_id_taken_in_another_tenant_is_answered_as_one_the_caller_may_not_create(
    tenants: dict[str, ApiClient],
) -> None:
    """p-99 exists below tenant-a. Bob (admin of tenant-b) gets, whatever the path, exactly
    what Ed (an editor of tenant-b, who may create nothing) gets: no 409 confirming it."""
    created = tenants["alice"].post("/secrets", json=new_secret("p-99", TENANT_A, VALUE))
    assert created.status_code == 201, created.get_json()
    register = {"type": "project", "id": "p-99", "parent": TENANT_B}

    for attempt in (
        lambda client: client.post("/scopes", json=register),
        lambda client: client.post("/secrets", json=new_secret("p-99", TENANT_B)),
    ):
        taken, not_allowed = attempt(tenants["bob"]), attempt(tenants["ed"])
        assert refusal(taken) == refusal(not_allowed), taken.get_json()
        assert taken.status_code == 403
    # a free id that Ed may not create either: the same answer
    free = tenants["ed"].post("/scopes", json={**register, "id": "p-100"})
    assert refusal(free)[:2] == (403, "forbidden")
    assert "p-100" in refusal(free)[2]
    # and without a parent, a hidden id is as unknown as a free one
    hidden = tenants["bob"].post(
        "/secrets",
        json={**new_secret("p-99", TENANT_B), "scope": {"type": "project", "id": "p-99"}},
    )
    unknown = tenants["bob"].post(
        "/secrets",
        json={**new_secret("p-100", TENANT_B), "scope": {"type": "project", "id": "p-100"}},
    )
    assert hidden.status_code == unknown.status_code == 404
    assert (
        hidden.get_json()["error"]["message"].replace("p-99", "p-100")
        == unknown.get_json()["error"]["message"]
    )

    resolved = tenants["rita"].get("/resolve?project=p-99&include_values=true").get_json()
    assert [item["value"] for item in resolved["items"]] == [VALUE]


def test_service_account_names_belong_to_their_scope(
    api: ApiClient, tenants: dict[str, ApiClient]
) -> None:
    """Tenant-a's `ci` neither blocks nor reveals tenant-b's: each is a principal of its own."""
    made = {}
    for admin, tenant in (("alice", TENANT_A), ("bob", TENANT_B)):
        answer = tenants[admin].post("/service-accounts", json={"name": "ci", "scope": tenant})
        assert answer.status_code == 201, answer.get_json()
        made[admin] = answer.get_json()
    assert made["alice"]["principal"] != made["bob"]["principal"]
    again = tenants["bob"].post("/service-accounts", json={"name": "ci", "scope": TENANT_B})
    assert again.status_code == 409  # in its own scope, where bob sees it

    # a binding for alice's account grants bob's nothing
    granted = tenants["alice"].post(
        "/role-bindings",
        json={"principal": made["alice"]["principal"], "role": "reader", "scope": TENANT_A},
    )
    assert granted.status_code == 201
    token = tenants["bob"].post(f"/service-accounts/{made['bob']['id']}/tokens", json={})
    bobs_ci = ApiClient(api.client, token=token.get_json()["token"])
    assert bobs_ci.get("/auth/whoami").get_json()["principal"] == made["bob"]["principal"]
    assert bobs_ci.get("/scopes/organization/tenant-a").status_code == 404


@pytest.fixture
def migrating(tenants: dict[str, ApiClient], store: AdoptableBackend) -> dict[str, Any]:
    """A migration of tenant-a's secrets, started by alice and not run yet."""
    assert tenants["alice"].post("/secrets", json=new_secret("p-1", TENANT_A)).status_code == 201
    body = {"from": "local", "to": "store", "selector": {"scope": TENANT_A}}
    started = tenants["alice"].post("/migrations", json=body)
    assert started.status_code == 202, started.get_json()
    return started.get_json()


def test_another_tenant_learns_no_migration_id(
    tenants: dict[str, ApiClient], migrating: dict[str, Any]
) -> None:
    job_id = migrating["id"]
    body = {"from": "local", "to": "store", "selector": {"scope": TENANT_B}}

    busy = tenants["bob"].post("/migrations", json=body)
    assert busy.status_code == 409
    assert job_id not in busy.get_data(as_text=True)
    assert tenants["bob"].get(f"/migrations/{job_id}").status_code == 404
    assert tenants["bob"].get("/migrations").get_json()["items"] == []
    refused = tenants["ed"].post("/migrations", json=body)  # no admin anywhere: told nothing
    assert refused.status_code in (403, 404)
    assert job_id not in refused.get_data(as_text=True)
    # its owner is told which one
    mine = tenants["alice"].post("/migrations", json={**body, "selector": {"scope": TENANT_A}})
    assert mine.status_code == 409 and job_id in mine.get_data(as_text=True)


# -- lows ------------------------------------------------------------------------------------


def test_an_editor_destroys_no_version_for_good(app: Flask, api: ApiClient) -> None:
    """Destroying a version cannot be undone, like a purge: it takes an admin, not an editor."""
    secret = api.create(name="DB_PASSWORD", scope={"type": "project", "id": "p-42"}, value=VALUE)
    api.post(f"/secrets/{secret['id']}/versions", json={"value": "second"})
    api.post(
        "/role-bindings",
        json={"principal": "user:eve", "role": "editor", "scope": {"type": "global"}},
    )
    eve = as_user(app, "eve")

    refused = eve.post(f"/secrets/{secret['id']}/versions/1/destroy")
    assert refused.status_code == 403, refused.get_json()
    assert api.get(f"/secrets/{secret['id']}/value?version=1").get_json()["value"] == VALUE
    assert eve.post(f"/secrets/{secret['id']}/versions/1/disable").status_code == 200
    assert api.post(f"/secrets/{secret['id']}/versions/1/destroy").status_code == 200
