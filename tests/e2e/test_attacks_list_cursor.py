"""Attacks on keyset paging (issue #20): a cursor names a position only. Taken from another
scope's list, or made up to point at a hidden secret's place, it shows nothing the caller
could not list page by page anyway, and `next` never names a secret the caller cannot see."""

from __future__ import annotations

import io

from flask import Flask

from core.domain.secrets import ListPosition
from entrypoints.http.cursor import decode_cursor, encode_cursor
from tests.e2e.conftest import ApiClient, as_user


def imported(api: ApiClient, scope_id: str, names: list[str]) -> None:
    lines = "".join(f"{name}=value-{name}\n" for name in names).encode()
    response = api.post(
        "/imports",
        data={"scope_type": "project", "scope_id": scope_id, "file": (io.BytesIO(lines), "x.env")},
        content_type="multipart/form-data",
    )
    assert response.status_code in (200, 201, 202), response.get_json()


def bind(api: ApiClient, principal: str, scope_id: str, pattern: str | None = None) -> None:
    body = {"principal": principal, "role": "viewer", "scope": {"type": "project", "id": scope_id}}
    response = api.post("/role-bindings", json={**body, "name_pattern": pattern})
    assert response.status_code == 201, response.get_json()


def test_a_cursor_from_another_scope_leaks_nothing_of_a_hidden_scope(
    app: Flask, api: ApiClient
) -> None:
    api.register_scope("project", "hidden", ("team", "t-1"))
    imported(api, "p-42", ["A_1", "A_2", "A_3"])
    imported(api, "hidden", ["A_0", "A_15", "B_SECRET_NAME", "C_9"])
    bind(api, "user:eve", "p-42")
    eve = as_user(app, "eve")
    own = eve.get("/secrets?scope_type=project&scope_id=p-42&page_size=1&after=").get_json()
    assert [i["name"] for i in own["items"]] == ["A_1"] and own["next"]
    for cursor in (own["next"], encode_cursor(ListPosition("A_0")), ""):
        response = eve.get(f"/secrets?scope_type=project&scope_id=hidden&after={cursor}")
        text = response.get_data(as_text=True)
        assert response.status_code in (200, 404), text
        if response.status_code == 200:
            assert response.get_json()["items"] == [] and response.get_json()["next"] is None
        for hidden in ("A_0", "A_15", "B_SECRET_NAME", "C_9"):
            assert hidden not in text


def test_a_forged_cursor_next_to_a_hidden_name_shows_only_visible_secrets(
    app: Flask, api: ApiClient
) -> None:
    imported(api, "p-42", ["PUB_1", "PRIV_KEY", "PUB_2", "PRIV_TOKEN", "PUB_3"])
    bind(api, "user:mallory", "p-42", "PUB_*")
    mallory = as_user(app, "mallory")
    for position in (ListPosition("PRIV_KEY"), ListPosition("PRIV_A"), ListPosition("PA")):
        cursor = encode_cursor(position)
        response = mallory.get(
            f"/secrets?scope_type=project&scope_id=p-42&page_size=1&after={cursor}"
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        text = response.get_data(as_text=True)
        assert [i["name"] for i in body["items"]] == ["PUB_1"]
        assert "PRIV_KEY" not in text.replace(cursor, "") and "PRIV_TOKEN" not in text
        assert decode_cursor(body["next"]).name == "PUB_1"  # the visible item's place, no other
