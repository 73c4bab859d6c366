"""Access control over HTTP, on SQLite and PostgreSQL: the permission matrix, cross-organization
isolation, personal scopes, tokens, resolution."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from sqlalchemy import event, select

from adapters.db.tables import api_tokens, metadata
from tests.e2e.conftest import JWT_KEY, ApiClient, as_user, user_token

VALUE = "pg-pass-matrix-7d3f1a9c"

# The secret under test lives in team t-1. A binding at each of these scopes relates to it so:
RELATIONS = {
    "same": ("team", "t-1"),
    "parent": ("organization", "acme"),
    "child": ("project", "p-42"),
    "sibling": ("team", "t-2"),
    "other_org": ("organization", "other"),
}
COVERING = {"same", "parent"}
ROLES = ("viewer", "reader", "editor", "admin", "auditor")
# What each role may do, per SPEC §7: list+metadata, read values, write, admin, audit.
CAN = {
    "viewer": {"list"},
    "reader": {"list", "read"},
    "editor": {"list", "read", "write"},
    "admin": {"list", "read", "write", "admin", "audit"},
    "auditor": {"list", "audit"},
}


@pytest.fixture
def world(api: ApiClient) -> dict[str, Any]:
    """acme > t-1 > p-42, acme > t-2, other > o-t: the secret DB_PASSWORD in team t-1."""
    api.register_scope("team", "t-2", ("organization", "acme"))
    api.register_scope("organization", "other", ("global", "global"))
    api.register_scope("team", "o-t", ("organization", "other"))
    secret = api.create(name="DB_PASSWORD", value=VALUE, scope={"type": "team", "id": "t-1"})
    return {"secret": secret}


def grant(api: ApiClient, principal: str, role: str, scope: tuple[str, str], **extra: Any) -> str:
    response = api.post(
        "/role-bindings",
        json={"principal": principal, "role": role, "scope": {"type": scope[0], "id": scope[1]}}
        | extra,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def outcomes(client: ApiClient, secret_id: str) -> dict[str, int]:
    """The status of each operation on the secret, for one caller."""
    listed = client.get("/secrets?scope_type=team&scope_id=t-1").get_json()
    return {
        "list": 200 if any(item["id"] == secret_id for item in listed.get("items", [])) else 404,
        "get": client.get(f"/secrets/{secret_id}").status_code,
        "by_path": client.get("/scopes/team/t-1/secrets/DB_PASSWORD").status_code,
        "versions": client.get(f"/secrets/{secret_id}/versions").status_code,
        "read": client.get(f"/secrets/{secret_id}/value").status_code,
        "write": client.post(f"/secrets/{secret_id}/versions", json={"value": "v"}).status_code,
        "patch": client.patch(f"/secrets/{secret_id}", json={"description": "d"}).status_code,
        "create": client.post(
            "/secrets",
            json={"name": "NEW_ONE", "value": "v", "scope": {"type": "team", "id": "t-1"}},
        ).status_code,
        "purge": client.post(f"/secrets/{secret_id}/purge").status_code,  # live: 409 if allowed
        "access": client.get(f"/secrets/{secret_id}/access").status_code,
        "bind": client.post(
            "/role-bindings",
            json={
                "principal": "user:zed",
                "role": "viewer",
                "scope": {"type": "team", "id": "t-1"},
            },
        ).status_code,
    }


def expected(role: str, relation: str) -> dict[str, int]:
    if relation not in COVERING:
        return dict.fromkeys(
            ("list", "get", "by_path", "versions", "read", "write", "patch"), 404
        ) | {"create": 404, "purge": 404, "access": 404, "bind": 404}
    can = CAN[role]

    def status(needed: str, ok: int) -> int:
        return ok if needed in can else 403

    return {
        "list": 200,
        "get": 200,
        "by_path": 200,
        "versions": 200,
        "read": status("read", 200),
        "write": status("write", 201),
        "patch": status("write", 200),
        "create": status("write", 201),
        "purge": status("admin", 409),
        "access": status("audit", 200),
        "bind": status("admin", 201),
    }


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(app, api: ApiClient, world, role: str, relation: str) -> None:
    grant(api, "user:carol", role, RELATIONS[relation])
    carol = as_user(app, "carol")
    assert outcomes(carol, world["secret"]["id"]) == expected(role, relation)


@pytest.mark.parametrize("role", ROLES)
def test_group_bindings_work_like_user_bindings(app, api: ApiClient, world, role: str) -> None:
    grant(api, "group:dba", role, RELATIONS["parent"])
    member = as_user(app, "dave", groups=("dba",))
    assert outcomes(member, world["secret"]["id"]) == expected(role, "parent")
    outsider = as_user(app, "erin", groups=("web",))
    assert outcomes(outsider, world["secret"]["id"]) == expected(role, "sibling")


def test_nobody_is_denied_by_default(app, world) -> None:
    assert outcomes(as_user(app, "nobody"), world["secret"]["id"]) == expected("admin", "sibling")


def test_narrowed_bindings(app, api: ApiClient, world) -> None:
    other = api.create(name="DB_USER", value="u", scope={"type": "team", "id": "t-1"})
    grant(api, "user:nina", "reader", ("team", "t-1"), secret_id=world["secret"]["id"])
    grant(api, "user:gus", "reader", ("organization", "acme"), name_pattern="DB_P*")
    for name in ("nina", "gus"):
        client = as_user(app, name)
        assert client.get(f"/secrets/{world['secret']['id']}/value").get_json()["value"] == VALUE
        assert client.get(f"/secrets/{other['id']}/value").status_code == 404
        listed = client.get("/secrets").get_json()
        assert [item["name"] for item in listed["items"]] == ["DB_PASSWORD"]


def test_expired_and_removed_bindings_stop_granting(app, api: ApiClient, world) -> None:
    binding = grant(api, "user:ivy", "reader", ("team", "t-1"))
    ivy = as_user(app, "ivy")
    assert ivy.get(f"/secrets/{world['secret']['id']}/value").status_code == 200
    assert api.delete(f"/role-bindings/{binding}").status_code == 204
    assert ivy.get(f"/secrets/{world['secret']['id']}/value").status_code == 404
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    grant(api, "user:ivy", "reader", ("team", "t-1"), expires_at=soon)
    assert ivy.get(f"/secrets/{world['secret']['id']}/value").status_code == 200
    time.sleep(2.2)
    assert ivy.get(f"/secrets/{world['secret']['id']}/value").status_code == 404


def test_cross_organization_access_is_impossible(app, api: ApiClient, world) -> None:
    grant(api, "user:mallory", "admin", ("organization", "other"))
    mallory = as_user(app, "mallory")
    secret_id = world["secret"]["id"]
    assert mallory.get(f"/secrets/{secret_id}").status_code == 404
    assert mallory.get(f"/secrets/{secret_id}/value").status_code == 404
    assert mallory.get("/scopes/team/t-1/secrets/DB_PASSWORD/value").status_code == 404
    assert mallory.get("/secrets").get_json()["total"] == 0
    resolved = mallory.get("/resolve?team=t-1&include_values=true").get_json()["items"]
    assert resolved == []
    assert mallory.get(f"/secrets/{secret_id}/access").status_code == 404
    assert mallory.get("/role-bindings?scope_type=team&scope_id=t-1").status_code == 404
    body = {"principal": "user:mallory", "role": "admin", "scope": {"type": "team", "id": "t-1"}}
    assert mallory.post("/role-bindings", json=body).status_code == 404
    not_found = mallory.get(f"/secrets/{secret_id}").get_json()
    missing = mallory.get("/secrets/00000000-0000-4000-8000-000000000000").get_json()
    assert not_found["error"]["code"] == missing["error"]["code"] == "not_found"


def test_personal_scopes_are_their_owners_alone(app, api: ApiClient, world) -> None:
    alice = as_user(app, "alice")
    mine = alice.post(
        "/secrets",
        json={"name": "MY_TOKEN", "value": VALUE, "scope": {"type": "user", "id": "alice"}},
    )
    assert mine.status_code == 201
    secret_id = mine.get_json()["id"]
    assert alice.get(f"/secrets/{secret_id}/value").get_json()["value"] == VALUE
    grant(api, "user:bob", "admin", ("global", "global"))
    for other in (as_user(app, "bob"), api):  # an admin of global, and the development root
        assert other.get(f"/secrets/{secret_id}").status_code == 404
        assert other.get(f"/secrets/{secret_id}/value").status_code == 404
    foreign = as_user(app, "bob").post(
        "/secrets", json={"name": "X", "value": "v", "scope": {"type": "user", "id": "alice"}}
    )
    assert foreign.status_code == 404
    binding = {"principal": "user:bob", "role": "reader", "scope": {"type": "user", "id": "alice"}}
    assert api.post("/role-bindings", json=binding).status_code == 400


def test_access_report_names_readers_and_their_bindings(app, api: ApiClient, world) -> None:
    grant(api, "user:rita", "reader", ("organization", "acme"))
    grant(api, "group:ops", "editor", ("team", "t-1"))
    grant(api, "user:vic", "viewer", ("team", "t-1"))
    grant(api, "user:sam", "reader", ("team", "t-2"))
    readers = api.get(f"/secrets/{world['secret']['id']}/access").get_json()["items"]
    assert sorted((r["principal"], r["role"]) for r in readers) == [
        ("group:ops", "editor"),
        ("user:rita", "reader"),
    ]
    assert all(r["binding_id"] for r in readers)


def test_scopes_registration_and_deletion(app, api: ApiClient, world) -> None:
    grant(api, "user:olga", "admin", ("organization", "acme"))
    olga = as_user(app, "olga")
    made = olga.post(
        "/scopes",
        json={"type": "team", "id": "t-9", "parent": {"type": "organization", "id": "acme"}},
    )
    assert made.status_code == 201
    elsewhere = olga.post(
        "/scopes",
        json={"type": "team", "id": "t-x", "parent": {"type": "organization", "id": "other"}},
    )
    assert elsewhere.status_code == 404
    wrong_parent = api.post(
        "/scopes", json={"type": "team", "id": "t-y", "parent": {"type": "global", "id": "global"}}
    )
    assert wrong_parent.status_code == 400
    refused = olga.delete("/scopes/team/t-1")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"]["secrets"] == 1
    assert olga.delete("/scopes/team/t-9").status_code == 204
    assert olga.get("/scopes/team/t-9").status_code == 404


def test_service_account_tokens(app, api: ApiClient, world, engine) -> None:
    account = api.post(
        "/service-accounts", json={"name": "ci-deployer", "scope": {"type": "team", "id": "t-1"}}
    ).get_json()
    assert account["principal"] == "service:ci-deployer@team:t-1"  # the team's own name
    grant(api, account["principal"], "reader", ("team", "t-1"))
    issued = api.post(f"/service-accounts/{account['id']}/tokens", json={"description": "ci"})
    assert issued.status_code == 201
    token = issued.get_json()["token"]
    assert token.startswith("smt_") and len(token) >= 4 + 43
    ci = ApiClient(app.test_client(), token=token)
    assert ci.get("/auth/whoami").get_json()["principal"] == account["principal"]
    assert ci.get(f"/secrets/{world['secret']['id']}/value").get_json()["value"] == VALUE

    listed = api.get(f"/service-accounts/{account['id']}/tokens").get_json()["items"]
    assert "token" not in listed[0] and listed[0]["last_used_at"] is not None
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                assert token not in repr(tuple(row)), table.name
        hashes = connection.execute(select(api_tokens.c.token_hash)).scalars().all()
    assert len(hashes) == 1 and len(hashes[0]) == 64

    token_id = issued.get_json()["id"]
    assert api.delete(f"/service-accounts/{account['id']}/tokens/{token_id}").status_code == 204
    revoked = ci.get("/auth/whoami")
    assert revoked.status_code == 401


def bad_tokens() -> dict[str, str]:
    valid = user_token("tess")
    header, payload, signature = valid.split(".")
    now = int(time.time())
    base = {"iss": "https://idp.test", "aud": "secret-management", "sub": "tess", "exp": now + 60}
    return {
        "expired": user_token("tess", exp=now - 120, iat=now - 600),
        "tampered": f"{header}.{payload}.{signature[:-4]}AAAA",
        "wrong_audience": jwt.encode(base | {"aud": "another-service"}, JWT_KEY, "HS256"),
        "wrong_issuer": jwt.encode(base | {"iss": "https://evil.test"}, JWT_KEY, "HS256"),
        "wrong_key": jwt.encode(base, "a-different-key-of-enough-length-0123456789", "HS256"),
        "no_expiry": jwt.encode({k: v for k, v in base.items() if k != "exp"}, JWT_KEY, "HS256"),
        "api_token_unknown": "smt_" + "A" * 43,
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("kind", list(bad_tokens()))
def test_bad_tokens_get_the_same_401(app, world, kind: str) -> None:
    response = ApiClient(app.test_client(), token=bad_tokens()[kind]).get("/secrets")
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert (error["code"], error["message"], error["details"]) == (
        "unauthenticated",
        "invalid or expired credentials",
        {},
    )


def test_resolution_over_five_levels_in_one_statement(app, api: ApiClient) -> None:
    engine = app.extensions["container"].engine()
    api.register_scope("project", "p-43", ("team", "t-1"))
    layout = [
        ("API_URL", {"type": "global"}, None, "global"),
        ("API_URL", {"type": "organization", "id": "acme"}, None, "org"),
        ("API_URL", {"type": "team", "id": "t-1"}, None, "team"),
        ("API_URL", {"type": "project", "id": "p-42"}, None, "project"),
        ("API_URL", {"type": "project", "id": "p-42"}, "production", "project-prod"),
        ("LOG_LEVEL", {"type": "global"}, "production", "global-prod"),
        ("LOG_LEVEL", {"type": "team", "id": "t-1"}, None, "team-any"),
        ("ONLY_GLOBAL", {"type": "global"}, None, "g"),
        ("SIBLING_ONLY", {"type": "project", "id": "p-43"}, None, "sibling"),
        ("STAGING_ONLY", {"type": "team", "id": "t-1"}, "staging", "staging"),
    ]
    for name, scope, environment, value in layout:
        api.create(name=name, scope=scope, environment=environment, value=value)
    grant(api, "user:uma", "reader", ("global", "global"))
    uma = as_user(app, "uma")
    assert (
        uma.post(
            "/secrets",
            json={"name": "API_URL", "value": "x", "scope": {"type": "project", "id": "p-42"}},
        ).status_code
        == 403
    )  # a reader may not write in shared scopes ...
    assert (
        uma.post(
            "/secrets",
            json={"name": "API_URL", "value": "mine", "scope": {"type": "user", "id": "uma"}},
        ).status_code
        == 201
    )  # ... but her personal scope is hers

    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        resolved = uma.get("/resolve?project=p-42&environment=production").get_json()["items"]
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    winners = {item["name"]: (item["scope"]["type"], item["environment"]) for item in resolved}
    assert winners == {
        "API_URL": ("user", None),
        "LOG_LEVEL": ("team", None),
        "ONLY_GLOBAL": ("global", None),
    }
    api_url = next(item for item in resolved if item["name"] == "API_URL")
    assert [(s["scope"]["type"], s["environment"]) for s in api_url["shadows"]] == [
        ("project", "production"),
        ("project", None),
        ("team", None),
        ("organization", None),
        ("global", None),
    ]
    assert all(item["value"] is None for item in resolved)  # metadata unless asked
    # One statement resolves, one reads the caller's bindings (until when the answer may be
    # cached); the rest append the request's audit event.
    resolving = [sql for sql in statements if "secret_audit" not in sql]
    assert len(resolving) == 2, resolving
    assert "secret_secrets" in resolving[0] and "secret_role_bindings" in resolving[0]
    assert "secret_secrets" not in resolving[1] and "secret_role_bindings" in resolving[1]
    # Once the worker knows the change generation (its first audit commit tells it), the same
    # resolution comes from its read cache: no statement but the audit's.
    assert uma.get("/resolve?project=p-42&environment=production").get_json()["items"] == resolved
    statements.clear()
    event.listen(engine, "before_cursor_execute", listener)
    try:
        again = uma.get("/resolve?project=p-42&environment=production").get_json()["items"]
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert again == resolved
    assert [sql for sql in statements if "secret_audit" not in sql] == []

    with_values = uma.get("/resolve?project=p-42&environment=production&include_values=true")
    values = {item["name"]: item["value"] for item in with_values.get_json()["items"]}
    assert values == {"API_URL": "mine", "LOG_LEVEL": "team-any", "ONLY_GLOBAL": "g"}
    staging = uma.get("/resolve?project=p-42&environment=staging").get_json()["items"]
    assert {item["name"] for item in staging} >= {"STAGING_ONLY"}
