"""The scope API names each scope's parent (issue #16: the hierarchy could not be read back):
`parent` is `{"type", "id"}`, or null for the global scope, in the answers of `POST /scopes`,
`GET /scopes/{type}/{id}` and `GET /scopes`, for scopes registered and for scopes created on
a secret's first write."""

from __future__ import annotations

from flask import Flask

from tests.e2e.conftest import ApiClient, as_user

GLOBAL = {"type": "global", "id": "global"}
ACME = {"type": "organization", "id": "acme"}
TEAM = {"type": "team", "id": "t-1"}


def test_a_registered_scope_answers_with_its_parent(api: ApiClient) -> None:
    created = api.post("/scopes", json={"type": "team", "id": "t-2", "parent": ACME})
    assert created.status_code == 201
    assert created.get_json()["parent"] == ACME
    assert api.get("/scopes/team/t-2").get_json()["parent"] == ACME
    assert api.get("/scopes/organization/acme").get_json()["parent"] == GLOBAL
    assert api.get("/scopes/global/global").get_json()["parent"] is None


def test_the_list_of_scopes_gives_the_whole_hierarchy(api: ApiClient) -> None:
    api.create(name="A", value="v", scope={"type": "project", "id": "p-9", "parent": ACME})
    listed = api.get("/scopes?page_size=500").get_json()["items"]
    parents = {(item["type"], item["id"]): item["parent"] for item in listed}
    assert parents == {
        ("global", "global"): None,
        ("organization", "acme"): GLOBAL,
        ("team", "t-1"): ACME,
        ("project", "p-42"): TEAM,
        ("project", "p-9"): ACME,  # created on the secret's first write
    }


def test_a_personal_scope_is_below_the_global_one(app: Flask) -> None:
    alice = as_user(app, "alice")
    alice.create(name="A", value="v", scope={"type": "user", "id": "alice"})
    assert alice.get("/scopes/user/alice").get_json()["parent"] == GLOBAL
