"""Keyset paging of a scope's secrets (`after` in, `next` out; issue #20): every visible secret
once, in order; no total on cursor pages; offset paging unchanged; a bad cursor is a 400."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from flask import Flask

from entrypoints.http.cursor import decode_cursor, encode_cursor
from tests.e2e.conftest import ApiClient, as_user

NAMES = [f"S_{n:03d}" for n in range(250)]
LIST = "/secrets?scope_type=project&scope_id=p-42"


def imported(api: ApiClient, scope_id: str, names: list[str]) -> None:
    lines = "".join(f"{name}=value-{name}\n" for name in names).encode()
    response = api.post(
        "/imports",
        data={"scope_type": "project", "scope_id": scope_id, "file": (io.BytesIO(lines), "x.env")},
        content_type="multipart/form-data",
    )
    assert response.status_code in (200, 201, 202), response.get_json()


def walk(client: ApiClient, path: str, page_size: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page by cursor from the first (`after=` empty); the names and the bodies."""
    names: list[str] = []
    bodies: list[dict[str, Any]] = []
    after = ""
    while True:
        response = client.get(f"{path}&page_size={page_size}&after={after}")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        bodies.append(body)
        names += [item["name"] for item in body["items"]]
        if body["next"] is None:
            return names, bodies
        after = body["next"]


@pytest.fixture
def bulk(api: ApiClient) -> ApiClient:
    imported(api, "p-42", NAMES)
    api.register_scope("project", "p-7", ("team", "t-1"))
    imported(api, "p-7", ["OTHER_A", "S_0999", "ZZZ"])
    return api


def test_paging_by_cursor_gives_every_secret_once_in_order(bulk: ApiClient) -> None:
    names, bodies = walk(bulk, LIST, 7)
    assert names == NAMES
    assert len(bodies) == 36  # 35 full pages and one of 5
    assert all(b["total"] is None and b["page"] is None for b in bodies)
    assert all(b["page_size"] == 7 for b in bodies)
    assert [len(b["items"]) for b in bodies[:-1]] == [7] * 35
    # Each next names the last item of its page.
    assert all(decode_cursor(b["next"]).name == b["items"][-1]["name"] for b in bodies[:-1])


def test_a_narrowed_binding_pages_only_what_it_sees(app: Flask, bulk: ApiClient) -> None:
    bound = bulk.post(
        "/role-bindings",
        json={
            "principal": "user:dora",
            "role": "viewer",
            "scope": {"type": "project", "id": "p-42"},
            "name_pattern": "S_1*",
        },
    )
    assert bound.status_code == 201, bound.get_json()
    dora = as_user(app, "dora")
    names, bodies = walk(dora, LIST, 9)
    assert names == [name for name in NAMES if name.startswith("S_1")]
    assert all(decode_cursor(b["next"]).name in names for b in bodies if b["next"])


def test_offset_pages_keep_their_total_and_give_the_cursor_onwards(bulk: ApiClient) -> None:
    first = bulk.get(f"{LIST}&page=1&page_size=100").get_json()
    assert (first["page"], first["total"], len(first["items"])) == (1, 250, 100)
    last = bulk.get(f"{LIST}&page=3&page_size=100").get_json()
    assert (last["page"], last["total"], len(last["items"]), last["next"]) == (3, 250, 50, None)
    onwards = bulk.get(f"{LIST}&page_size=100&after={first['next']}").get_json()
    second = bulk.get(f"{LIST}&page=2&page_size=100").get_json()
    assert onwards["items"] == second["items"]
    assert onwards["next"] == second["next"] == encode_cursor(decode_cursor(second["next"]))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "!!!",
    "a",
    b64(b"not json"),
    b64(b'{"n": "S_001", "e": ""}'),
    b64(b'["S_001"]'),
    b64(b'["S_001", 1]'),
    b64(b'["", ""]'),
    b64(b'["S_001", "", "x"]'),
    b64(b'["S_001", ""]'),  # JSON with spaces: not this service's spelling
    base64.urlsafe_b64encode(b'["S_001",""]').decode() + "==",  # padded once too often
    b64(b'["S_001",""]') + "=",
    b64(b'["S_001",""]') + "A" * 5000,
    b64(b'["\xff",""]'),
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_is_a_validation_error_naming_after(bulk: ApiClient, cursor: str) -> None:
    response = bulk.get(f"{LIST}&after={cursor}")
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert "after" in json.dumps(error["details"])


def test_after_needs_one_scope_and_no_page(bulk: ApiClient) -> None:
    cursor = encode_cursor(decode_cursor(b64(b'["S_001",""]')))
    for path in (
        f"/secrets?after={cursor}",
        f"/secrets?scope_type=project&after={cursor}",
        f"{LIST}&page=2&after={cursor}",
    ):
        response = bulk.get(path)
        assert response.status_code == 400, (path, response.get_json())
        assert "after" in json.dumps(response.get_json()["error"]["details"]), path
