"""Attacks on references over HTTP, on SQLite and PostgreSQL: smuggling a reference past the
parser (percent-encoding, NUL, extra keys), probing for secrets one cannot see (404 alike), and
reading a value one may not read through another value's `${secret://…}` expansion."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.e2e.conftest import ApiClient, as_user
from tests.e2e.test_references_api import HIDDEN_VALUE, VALUE, by_ref, create, grant


@pytest.mark.parametrize(
    "ref",
    [
        "https://project/p-42/API_KEY",
        "secret://project/p-42/API_KEY?foo=1",
        "secret://project/p-42/API_KEY?version=1&stage=current",
        "secret://project/p-42/API%5FKEY",
        "secret://project/p-42/API_KEY\x00",
    ],
)
def test_a_bad_reference_is_a_400(api: ApiClient, ref: str) -> None:
    answer = by_ref(api, ref)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["code"] == "validation_error"


def test_an_invisible_secret_is_a_404_identical_to_a_missing_one(
    app: Flask, api: ApiClient
) -> None:
    create(api, "HIDDEN", HIDDEN_VALUE, scope=("team", "t-1"))
    create(api, "VISIBLE", VALUE)
    grant(api, "user:mallory", "reader", ("project", "p-42"))
    mallory = as_user(app, "mallory")
    hidden = by_ref(mallory, "secret://team/t-1/HIDDEN")
    missing = by_ref(mallory, "secret://team/t-1/NOPE")
    assert hidden.status_code == missing.status_code == 404
    strip = lambda body: {k: v for k, v in body["error"].items() if k != "request_id"}  # noqa: E731
    assert strip(hidden.get_json())["message"] == "no secret secret://team/t-1/HIDDEN"
    assert strip(hidden.get_json()) | {"message": ""} == strip(missing.get_json()) | {"message": ""}
    assert by_ref(mallory, "secret://project/p-42/VISIBLE").get_json()["value"] == VALUE


def test_a_reference_the_caller_cannot_read_is_a_422_without_the_value(
    app: Flask, api: ApiClient
) -> None:
    create(api, "HIDDEN", HIDDEN_VALUE, scope=("team", "t-1"))
    outer = create(api, "OUTER", "x-${secret://team/t-1/HIDDEN}")
    grant(api, "user:carol", "reader", ("project", "p-42"))
    carol = as_user(app, "carol")
    answer = carol.get(f"/secrets/{outer['id']}/value", query_string={"expand": "true"})
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "reference_unresolvable"
    assert error["details"]["reference"] == "secret://team/t-1/HIDDEN"
    assert HIDDEN_VALUE not in answer.get_data(as_text=True)
    assert "x-" not in answer.get_data(as_text=True)
    assert carol.get(f"/secrets/{outer['id']}/value").get_json()["value"].startswith("x-${")


def test_a_batch_neither_reveals_nor_expands_what_the_caller_cannot_read(
    app: Flask, api: ApiClient
) -> None:
    create(api, "HIDDEN", HIDDEN_VALUE, scope=("team", "t-1"))
    create(api, "PROBE", "${secret://team/t-1/HIDDEN}")
    grant(api, "user:eve", "reader", ("project", "p-42"))
    eve = as_user(app, "eve")
    refs = ["secret://team/t-1/HIDDEN", "secret://team/t-1/NOPE", "secret://project/p-42/PROBE"]
    answer = eve.post("/references/values", json={"references": refs, "expand": True})
    assert answer.status_code == 200
    hidden, missing, probe = answer.get_json()["items"]
    assert hidden["error"]["code"] == missing["error"]["code"] == "not_found"
    assert hidden["error"]["message"].replace("HIDDEN", "NOPE") == missing["error"]["message"]
    assert probe["error"]["code"] == "reference_unresolvable"
    assert HIDDEN_VALUE not in answer.get_data(as_text=True)
    resolved = eve.get(
        "/resolve", query_string={"project": "p-42", "include_values": "true", "expand": "true"}
    )
    assert resolved.status_code == 422
    assert HIDDEN_VALUE not in resolved.get_data(as_text=True)
