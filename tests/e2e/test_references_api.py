"""References over HTTP on SQLite and PostgreSQL: values by reference (one and a batch), 404 alike
for an invisible and a missing secret, one audit event per value, and `${…}` expansion."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient
from tests.e2e.test_read_cache import read_until_cached

VALUE = "sk-ref-e2e-canary-7f3a9c"
HIDDEN_VALUE = "sk-ref-hidden-canary-1b2c"


def create(api: ApiClient, name: str, value: str, scope=("project", "p-42"), **extra: Any):
    kind, scope_id = scope
    body = {"type": kind} if kind == "global" else {"type": kind, "id": scope_id}
    return api.create(name=name, scope=body, value=value, **extra)


def grant(api: ApiClient, principal: str, role: str, scope: tuple[str, str]) -> None:
    body = {"principal": principal, "role": role, "scope": {"type": scope[0], "id": scope[1]}}
    response = api.post("/role-bindings", json=body)
    assert response.status_code == 201, response.get_json()


def by_ref(client: ApiClient, ref: str, **query: str) -> Any:
    return client.get("/references/value", query_string={"ref": ref, **query})


def value_reads(api: ApiClient) -> list[dict]:
    response = api.get(
        "/audit/events", query_string={"limit": "1000", "action": "secret.read_value"}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_every_answer_describing_a_secret_carries_its_canonical_reference(
    api: ApiClient,
) -> None:
    secret = create(api, "API_KEY", VALUE, environment="production")
    plain = create(api, "GLOBAL_KEY", VALUE, scope=("global", "global"))
    assert secret["reference"] == "secret://project/p-42/API_KEY?env=production"
    assert plain["reference"] == "secret://global/GLOBAL_KEY"
    listed = api.get("/secrets", query_string={"scope_type": "project", "scope_id": "p-42"})
    assert [item["reference"] for item in listed.get_json()["items"]] == [secret["reference"]]
    assert api.get(f"/secrets/{secret['id']}").get_json()["reference"] == secret["reference"]
    resolved = api.get("/resolve", query_string={"project": "p-42", "environment": "production"})
    references = {item["name"]: item["reference"] for item in resolved.get_json()["items"]}
    assert references == {"API_KEY": secret["reference"], "GLOBAL_KEY": plain["reference"]}


def test_a_value_by_reference_is_the_value_read_plus_the_reference(api: ApiClient) -> None:
    secret = create(api, "API_KEY", VALUE, environment="production")
    ref = "secret://project/p-42/API_KEY?env=production"
    answer = by_ref(api, ref)
    assert answer.status_code == 200, answer.get_json()
    expected = api.get(f"/secrets/{secret['id']}/value").get_json()
    assert answer.get_json() == {**expected, "reference": ref}
    api.post(f"/secrets/{secret['id']}/versions", json={"value": "second"})
    assert by_ref(api, ref + "&version=1").get_json()["value"] == VALUE
    assert by_ref(api, ref + "&stage=previous").get_json()["value"] == VALUE
    assert by_ref(api, ref + "&stage=current").get_json()["value"] == "second"
    pending = by_ref(api, ref + "&stage=pending")
    assert pending.status_code == 404 and pending.get_json()["error"]["code"] == "not_found"
    missing_version = by_ref(api, ref + "&version=9")
    assert missing_version.status_code == 404
    # Without ?env= the reference names the secret without an environment: there is none.
    assert by_ref(api, "secret://project/p-42/API_KEY").status_code == 404


def test_the_global_scope_in_both_spellings(api: ApiClient) -> None:
    create(api, "DB_URL", VALUE, scope=("global", "global"))
    for ref in ("secret://global/DB_URL", "secret://global/global/DB_URL"):
        answer = by_ref(api, ref)
        assert answer.status_code == 200 and answer.get_json()["value"] == VALUE


def test_a_batch_answers_in_order_with_one_audit_event_per_value(api: ApiClient) -> None:
    first = create(api, "A", "value-a", environment="dev")
    second = create(api, "B", "value-b")
    before = len(value_reads(api))
    refs = [
        "secret://project/p-42/B",
        "secret://project/p-42/NOPE",
        "secret://project/p-42/A?env=dev",
        "secret://project/p-42/A?bad=1",
    ]
    answer = api.post("/references/values", json={"references": refs})
    assert answer.status_code == 200, answer.get_json()
    items = answer.get_json()["items"]
    assert [item["reference"] for item in items] == refs
    assert items[0] == {
        "reference": refs[0],
        "secret_id": second["id"],
        "version": 1,
        "value": "value-b",
        "encoding": "utf-8",
        "expires_at": None,
    }
    assert items[1]["error"]["code"] == "not_found" and "value" not in items[1]
    assert (items[2]["secret_id"], items[2]["value"]) == (first["id"], "value-a")
    assert items[3]["error"]["code"] == "validation_error"
    reads = value_reads(api)[before:]
    assert sorted(e["resource"] for e in reads if e["outcome"] == "success") == sorted(
        [f"secret:{first['id']}", f"secret:{second['id']}"]
    )
    assert len(reads) == 3  # two values and the missing one; the malformed one reads nothing


def test_a_batch_is_bounded(api: ApiClient) -> None:
    too_many = ["secret://global/X"] * 101
    assert api.post("/references/values", json={"references": too_many}).status_code == 400
    assert api.post("/references/values", json={"references": []}).status_code == 400
    assert api.post("/references/values", json={"refs": ["x"]}).status_code == 400


def test_expansion_nested_with_its_audit_events(api: ApiClient) -> None:
    create(api, "HOST", "db.internal")
    create(api, "PASSWORD", "pw-${secret://project/p-42/SUFFIX}")
    create(api, "SUFFIX", "42")
    url = create(
        api,
        "DB_URL",
        "postgres://app:${secret://project/p-42/PASSWORD}@${secret://project/p-42/HOST}/db "
        "$${literal}",
    )
    raw = api.get(f"/secrets/{url['id']}/value").get_json()["value"]
    assert raw.startswith("postgres://app:${secret://")
    before = len(value_reads(api))
    expanded = api.get(f"/secrets/{url['id']}/value", query_string={"expand": "true"})
    assert expanded.status_code == 200, expanded.get_json()
    assert expanded.get_json()["value"] == "postgres://app:pw-42@db.internal/db ${literal}"
    assert len(value_reads(api)) - before == 4  # DB_URL, PASSWORD, SUFFIX, HOST
    by_path = api.get(
        "/scopes/project/p-42/secrets/DB_URL/value", query_string={"expand": "true"}
    ).get_json()["value"]
    by_reference = by_ref(api, "secret://project/p-42/DB_URL", expand="true").get_json()["value"]
    batch = api.post(
        "/references/values",
        json={"references": ["secret://project/p-42/DB_URL"], "expand": True},
    ).get_json()["items"][0]["value"]
    assert by_path == by_reference == batch == expanded.get_json()["value"]


def test_a_cycle_is_a_422(api: ApiClient) -> None:
    a = create(api, "A", "${secret://project/p-42/B}")
    create(api, "B", "x${secret://project/p-42/A}")
    answer = api.get(f"/secrets/{a['id']}/value", query_string={"expand": "true"})
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "reference_cycle"
    batch = api.post(
        "/references/values", json={"references": ["secret://project/p-42/A"], "expand": True}
    ).get_json()["items"][0]
    assert batch["error"]["code"] == "reference_cycle"


def test_depth_ten_is_served_and_eleven_refused(api: ApiClient) -> None:
    for i in range(12):
        nxt = f"${{secret://project/p-42/S{i + 1}}}" if i < 11 else "end"
        create(api, f"S{i}", nxt)
    deep = by_ref(api, "secret://project/p-42/S1", expand="true")  # S1 .. S11: depth 10
    assert deep.status_code == 200 and deep.get_json()["value"] == "end"
    too_deep = by_ref(api, "secret://project/p-42/S0", expand="true")  # depth 11
    assert too_deep.status_code == 422
    assert too_deep.get_json()["error"]["code"] == "reference_too_deep"


def test_resolve_with_expand_lists_its_expansions(api: ApiClient) -> None:
    inner = create(api, "INNER", "inner-value")
    create(api, "OUTER", "<${secret://project/p-42/INNER}>")
    query = {"project": "p-42", "include_values": "true"}
    plain = {i["name"]: i for i in api.get("/resolve", query_string=query).get_json()["items"]}
    assert plain["OUTER"]["value"] == "<${secret://project/p-42/INNER}>"
    assert plain["OUTER"]["expansions"] == []
    answer = api.get("/resolve", query_string={**query, "expand": "true"})
    items = {i["name"]: i for i in answer.get_json()["items"]}
    assert items["OUTER"]["value"] == "<inner-value>"
    assert items["OUTER"]["expansions"] == [
        {"reference": "secret://project/p-42/INNER", "secret_id": inner["id"], "version": 1}
    ]
    assert items["INNER"]["expansions"] == []
    cycle = create(api, "LOOP", "${secret://project/p-42/LOOP}")
    assert cycle["reference"] == "secret://project/p-42/LOOP"
    looped = api.get("/resolve", query_string={**query, "expand": "true"})
    assert looped.status_code == 422
    assert looped.get_json()["error"]["code"] == "reference_cycle"


@pytest.mark.parametrize("expand", [0, 1, "true", None])
def test_a_batch_takes_a_json_boolean_for_expand(api: ApiClient, expand: object) -> None:
    body = {"references": ["secret://global/X"], "expand": expand}
    assert api.post("/references/values", json=body).status_code == 400


def test_a_read_by_reference_from_the_read_cache_sees_another_workers_write_at_once(
    app: Flask, settings: Settings
) -> None:
    other = create_app(settings)
    try:
        api = ApiClient(app.test_client())
        secret = create(api, "CACHED", "one", scope=("global", "global"))
        path = "/references/value?ref=secret://global/CACHED%3Fstage%3Dcurrent"
        assert read_until_cached(app, api, path)["value"] == "one"
        written = ApiClient(other.test_client()).post(
            f"/secrets/{secret['id']}/versions", json={"value": "two"}
        )
        assert written.status_code == 201
        assert api.get(path).get_json()["value"] == "two"
        previous = "/references/value?ref=secret://global/CACHED%3Fstage%3Dprevious"
        assert api.get(previous).get_json()["value"] == "one"
    finally:
        other.extensions["container"].shutdown_resources()
