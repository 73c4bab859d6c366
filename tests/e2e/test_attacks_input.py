"""Attacks on input validation (issue #14, low): numbers past what the columns hold, fractions
taken for integers, dates UTC cannot hold, impossible cron lines, lone surrogates, NUL bytes,
JSON nested too deep, and 405 answers without `Allow`. Each used to answer 500 (or silently
truncate); each is now a 400 (404 for a version in a path) naming the field, on SQLite and
PostgreSQL alike, and nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.keys import MAX_BATCH
from tests.e2e.conftest import ApiClient

INT64_OVERFLOW = 2**63  # 9223372036854775808: past a `bigint`
SURROGATE = "\ud800"
Y9999 = "9999-12-31T23:59:59-05:00"  # 10000-01-01T04:59:59Z


@pytest.fixture
def secret(api: ApiClient) -> dict[str, Any]:
    created = api.create(name="DB_PASSWORD", scope={"type": "project", "id": "p-42"}, value="v1")
    api.post(f"/secrets/{created['id']}/versions", json={"value": "v2"})
    return api.get(f"/secrets/{created['id']}").get_json()


def send(api: ApiClient, method: str, path: str, body: Any = None) -> Any:
    """The request, its JSON body written with escapes: lone surrogates and NULs travel as
    `\\ud800` and `\\u0000`, as any client's JSON encoder writes them."""
    if body is None:
        return api.request(method, path)
    return api.request(method, path, data=json.dumps(body), content_type="application/json")


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    named = error["details"].get("fields", {}) or {error["details"].get("field"): None}
    assert field in named, error


INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


def query_integers(secret_id: str) -> list[tuple[str, str, int]]:
    """(path with `{n}` for the number, the field, its largest value) of every integer a query
    string takes."""
    return [
        (f"/secrets/{secret_id}/value?version={{n}}", "version", INT32_MAX),
        ("/scopes/project/p-42/secrets/DB_PASSWORD/value?version={n}", "version", INT32_MAX),
        ("/secrets?page={n}", "page", INT32_MAX),
        ("/secrets?page_size={n}", "page_size", 500),
        ("/scopes?page={n}", "page", INT32_MAX),
        ("/role-bindings?page={n}", "page", INT32_MAX),
        ("/service-accounts?scope_type=global&page={n}", "page", INT32_MAX),
        ("/audit/events?before_seq={n}", "before_seq", INT64_MAX),
        ("/audit/events?limit={n}", "limit", 1000),
        ("/reports/expiring?days={n}", "days", 3650),
        ("/reports/never-read?days={n}", "days", 3650),
        ("/reports/rotation-overdue?hours={n}", "hours", 87600),
        ("/reports/stale-tokens?days={n}", "days", 3650),
    ]


def body_integers(secret_id: str) -> list[tuple[str, str, dict[str, Any], str, int]]:
    """(method, path, body with "{n}" where the number goes, the field, its largest value) of
    every JSON integer."""
    policy = {"rotator": "random", "interval_seconds": 3600}
    rotation_policy = f"/secrets/{secret_id}/rotation-policy"
    return [
        ("POST", f"/secrets/{secret_id}/rollback", {"version": "{n}"}, "version", INT32_MAX),
        ("POST", "/audit/verify", {"from_seq": "{n}"}, "from_seq", INT64_MAX),
        ("POST", "/audit/verify", {"to_seq": "{n}"}, "to_seq", INT64_MAX),
        ("POST", "/keys/rewrap", {"limit": "{n}"}, "limit", INT32_MAX),
        ("POST", "/keys/rewrap", {"batch_size": "{n}"}, "batch_size", MAX_BATCH),
        (
            "POST",
            "/secrets",
            {"name": "N", "value": "v", "max_versions": "{n}"},
            "max_versions",
            INT32_MAX,
        ),
        ("PATCH", f"/secrets/{secret_id}", {"max_versions": "{n}"}, "max_versions", INT32_MAX),
        (
            "PUT",
            rotation_policy,
            {**policy, "interval_seconds": "{n}"},
            "interval_seconds",
            INT32_MAX,
        ),
        ("PUT", rotation_policy, {**policy, "grace_seconds": "{n}"}, "grace_seconds", INT32_MAX),
    ]


def with_number(body: dict[str, Any], number: Any) -> dict[str, Any]:
    return {key: number if value == "{n}" else value for key, value in body.items()}


@pytest.mark.parametrize("past", ["one", "2**63", "10**30"])
def test_integers_past_their_columns_are_refused_naming_the_field(
    api: ApiClient, secret: dict[str, Any], past: str
) -> None:
    def beyond(maximum: int) -> int:
        return {"one": maximum + 1, "2**63": max(INT64_OVERFLOW, maximum + 1), "10**30": 10**30}[
            past
        ]

    for template, field, maximum in query_integers(secret["id"]):
        assert_refused(api.get(template.format(n=beyond(maximum))), field)
    for method, path, body, field, maximum in body_integers(secret["id"]):
        assert_refused(send(api, method, path, with_number(body, beyond(maximum))), field)
    after = api.get(f"/secrets/{secret['id']}").get_json()
    assert after["revision"] == secret["revision"] and after["max_versions"] is None


@pytest.mark.parametrize("number", [INT64_OVERFLOW, 2**31, 0])
def test_a_version_in_a_path_past_its_column_is_a_version_that_does_not_exist(
    api: ApiClient, secret: dict[str, Any], number: int
) -> None:
    base = f"/secrets/{secret['id']}/versions/{number}"
    answers = [api.get(base)] + [api.post(f"{base}/{action}") for action in ("disable", "enable")]
    answers.append(api.post(f"{base}/destroy"))
    for response in answers:
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["error"]["code"] == "not_found"
    assert api.get(f"/secrets/{secret['id']}/versions/2147483647").status_code == 404  # in range


@pytest.mark.parametrize("fraction", [1.9, 1.0, "1", True])
def test_integers_are_strict_in_bodies(
    api: ApiClient, secret: dict[str, Any], fraction: Any
) -> None:
    """{"version": 1.9} rolled back to 1 and max_versions 2.7 stored 2."""
    assert_refused(
        send(api, "POST", f"/secrets/{secret['id']}/rollback", {"version": fraction}), "version"
    )
    assert_refused(
        send(api, "PATCH", f"/secrets/{secret['id']}", {"max_versions": fraction}), "max_versions"
    )
    after = api.get(f"/secrets/{secret['id']}").get_json()
    assert (after["current_version"], after["max_versions"]) == (2, None)
    assert send(api, "POST", f"/secrets/{secret['id']}/rollback", {"version": 1}).status_code == 201


@pytest.mark.parametrize("text", ["1.0", "+1", " 1", "1_0", "\u0661", "1e0", "0x1"])
def test_integers_in_query_strings_are_decimal_digits(
    api: ApiClient, secret: dict[str, Any], text: str
) -> None:
    assert_refused(
        api.get(f"/secrets/{secret['id']}/value", query_string={"version": text}), "version"
    )
    assert_refused(api.get("/secrets", query_string={"page": text}), "page")
    assert (
        api.get(f"/secrets/{secret['id']}/value", query_string={"version": "1"}).status_code == 200
    )


@pytest.mark.parametrize("moment", [Y9999, "0001-01-01T00:00:00+01:00"])
def test_dates_utc_cannot_hold_are_refused(
    api: ApiClient, secret: dict[str, Any], moment: str
) -> None:
    account = api.post(
        "/service-accounts", json={"name": "ci", "scope": {"type": "global"}}
    ).get_json()
    binding = {"principal": "user:ann", "role": "reader", "scope": {"type": "global"}}
    writes = [
        ("POST", "/secrets", {"name": "N", "value": "v", "expires_at": moment}, "expires_at"),
        ("PATCH", f"/secrets/{secret['id']}", {"not_before": moment}, "not_before"),
        (
            "POST",
            f"/secrets/{secret['id']}/versions",
            {"value": "v", "expires_at": moment},
            "expires_at",
        ),
        (
            "POST",
            f"/secrets/{secret['id']}/rotate",
            {"value": "v", "not_before": moment},
            "not_before",
        ),
        ("POST", "/role-bindings", {**binding, "expires_at": moment}, "expires_at"),
        ("POST", f"/service-accounts/{account['id']}/tokens", {"expires_at": moment}, "expires_at"),
    ]
    for method, path, body, field in writes:
        assert_refused(send(api, method, path, body), field)
    for field in ("since", "until"):
        assert_refused(api.get("/audit/events", query_string={field: moment}), field)
    assert api.get(f"/secrets/{secret['id']}").get_json()["revision"] == secret["revision"]
    at_the_end = {"name": "LAST", "value": "v", "expires_at": "9999-12-31T23:59:59+00:00"}
    assert send(api, "POST", "/secrets", at_the_end).status_code == 201


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "* * 31 4 *"])
def test_a_cron_line_that_matches_no_date_is_refused(
    api: ApiClient, secret: dict[str, Any], cron: str
) -> None:
    policy = {"rotator": "random", "cron": cron}
    assert_refused(send(api, "PUT", f"/secrets/{secret['id']}/rotation-policy", policy), "cron")
    leap_day = {"rotator": "random", "cron": "0 0 29 2 *"}
    assert send(api, "PUT", f"/secrets/{secret['id']}/rotation-policy", leap_day).status_code == 200


def unwritable_bodies(secret_id: str, bad: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, body, field) with `bad` in one string field each."""
    scope = {"type": "project", "id": "p-42"}
    return [
        ("POST", "/secrets", {"name": "N", "value": "v", "description": bad}, "description"),
        ("POST", "/secrets", {"name": "N", "value": "v", "tags": {"k": bad}}, "tags"),
        ("POST", "/secrets", {"name": "N", "value": "v", "tags": {bad: "v"}}, "tags"),
        ("POST", "/secrets", {"name": bad, "value": "v"}, "name"),
        ("POST", "/secrets", {"name": "N", "value": "v", "environment": bad}, "environment"),
        (
            "POST",
            "/secrets",
            {"name": "N", "value": "v", "scope": {"type": "team", "id": bad}},
            "scope",
        ),
        ("PATCH", f"/secrets/{secret_id}", {"description": bad}, "description"),
        (
            "POST",
            "/service-accounts",
            {"name": "sa", "scope": scope, "description": bad},
            "description",
        ),
        (
            "POST",
            "/role-bindings",
            {"principal": f"user:{bad}", "role": "reader", "scope": scope},
            "principal",
        ),
        ("POST", "/exports", {"scope": scope, "environment": bad}, "environment"),
        ("POST", "/backends/local/adopt", {"prefix": bad, "scope": scope}, "prefix"),
        ("POST", "/migrations/dry-run", {"from": "local", "to": bad}, "to"),
        (
            "PUT",
            f"/secrets/{secret_id}/rotation-policy",
            {"rotator": "random", "interval_seconds": 3600, "settings": {"alphabet": bad}},
            "settings",
        ),
    ]


@pytest.mark.parametrize("bad", [f"a{SURROGATE}b", "a\x00b"], ids=["lone surrogate", "NUL"])
def test_strings_no_database_can_hold_are_refused_naming_the_field(
    api: ApiClient, secret: dict[str, Any], bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    for method, path, body, field in unwritable_bodies(secret["id"], bad):
        caplog.clear()
        assert_refused(send(api, method, path, body), field)
        quoted = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
        assert quoted == [], (path, field)
    assert api.get(f"/secrets/{secret['id']}").get_json()["revision"] == secret["revision"]


def test_a_secret_value_may_hold_a_nul_but_not_a_lone_surrogate(api: ApiClient) -> None:
    created = send(api, "POST", "/secrets", {"name": "BIN", "value": "a\x00b"})
    assert created.status_code == 201
    assert api.get(f"/secrets/{created.get_json()['id']}/value").get_json()["value"] == "a\x00b"
    assert_refused(
        send(api, "POST", "/secrets", {"name": "BAD", "value": f"a{SURROGATE}"}), "value"
    )


QUERY_FILTERS = [
    ("/secrets", "prefix"),
    ("/secrets", "environment"),
    ("/secrets", "type"),
    ("/secrets", "tag"),
    ("/role-bindings", "principal"),
    ("/resolve", "environment"),
    ("/audit/events", "actor"),
    ("/audit/events", "resource"),
    ("/audit/events", "action"),
]


@pytest.mark.parametrize(("path", "field"), QUERY_FILTERS)
def test_a_nul_in_a_query_filter_is_refused(api: ApiClient, path: str, field: str) -> None:
    value = "k\x00=v" if field == "tag" else "a\x00b"
    assert_refused(api.get(path, query_string={field: value}), field)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/scopes/project/p-42/secrets/A%00B/value", "name"),  # the hot path
        ("GET", "/scopes/project/p-42/secrets/A%00B/value?encoding=utf-8", "name"),  # Flask
        ("GET", "/scopes/project/p-42/secrets/A%00B", "name"),
        ("GET", "/scopes/project/p%0042/secrets/A/value", "scope"),
        ("GET", "/scopes/project/p%0042", "scope"),
        ("DELETE", "/scopes/project/p%0042", "scope"),
        ("GET", "/secrets?scope_type=project&scope_id=p%0042", "scope_id"),
    ],
)
def test_a_nul_in_a_path_parameter_is_refused(
    api: ApiClient, method: str, path: str, field: str
) -> None:
    assert_refused(api.request(method, path), field)


def test_a_nul_in_a_backend_name_is_refused(api: ApiClient) -> None:
    body = {"prefix": "app/", "scope": {"type": "global"}}
    assert_refused(send(api, "POST", "/backends/lo%00cal/adopt", body), "backend")


def test_path_parameters_longer_than_their_columns_are_not_found(api: ApiClient) -> None:
    for path in (
        "/scopes/" + "t" * 33 + "/p-42/secrets/A/value",
        "/scopes/project/p-42/secrets/" + "A" * 256 + "/value",
        "/scopes/project/p-42/secrets/" + "A" * 256,
        "/scopes/project/" + "p" * 129,
        "/backends/" + "b" * 65 + "/adopt",
    ):
        method = "POST" if path.endswith("adopt") else "GET"
        response = api.request(method, path, json={})
        assert response.status_code == 404, (path, response.get_json())


@pytest.mark.parametrize(
    "body",
    [
        "[" * 10_000 + "]" * 10_000,
        '{"version": ' + "[" * 5_000 + "]" * 5_000 + "}",
        '{"version": ' + "1" * 5_000 + "}",
    ],
    ids=["10,000 nested arrays", "nested in a field", "a 5,000-digit number"],
)
def test_json_python_cannot_parse_is_refused(
    api: ApiClient, secret: dict[str, Any], body: str
) -> None:
    response = api.post(
        f"/secrets/{secret['id']}/rollback", data=body, content_type="application/json"
    )
    assert_refused(response, "json")
    assert api.get(f"/secrets/{secret['id']}").get_json()["revision"] == secret["revision"]


def test_free_form_settings_nested_too_deep_are_refused(
    api: ApiClient, secret: dict[str, Any]
) -> None:
    deep: Any = "x"
    for _ in range(20):
        deep = [deep]
    policy = {"rotator": "random", "interval_seconds": 3600, "settings": {"alphabet": deep}}
    assert_refused(send(api, "PUT", f"/secrets/{secret['id']}/rotation-policy", policy), "settings")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/secrets", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("PUT", "/secrets/{id}/value", {"GET", "HEAD", "OPTIONS"}),  # the hot path's URL
        ("POST", "/scopes/project/p-42/secrets/DB_PASSWORD/value", {"GET", "HEAD", "OPTIONS"}),
        ("PATCH", "/secrets/{id}/rotation-policy", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
    ],
)
def test_405_answers_name_the_allowed_methods(
    api: ApiClient, secret: dict[str, Any], method: str, path: str, allowed: set[str]
) -> None:
    response = api.request(method, path.format(id=secret["id"]))
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert {name.strip() for name in response.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize("environment", ["a\nb", "prod\n", 'x"y', "\u0100", "Prod"])
def test_an_export_environment_is_one_a_secret_can_have(api: ApiClient, environment: str) -> None:
    """It names the file in Content-Disposition: a newline was a 500, a quote or a character
    outside Latin-1 a header no client reads (the server dropped the connection)."""
    api.create(name="A", value="v", environment="prod")
    body = {"scope": {"type": "global"}, "environment": environment}
    assert_refused(send(api, "POST", "/exports", body), "environment")
    exported = send(api, "POST", "/exports", {**body, "environment": "prod"})
    assert (
        exported.headers["Content-Disposition"] == 'attachment; filename="global-global-prod.json"'
    )


def test_every_path_parameter_is_bounded_in_the_document(api: ApiClient) -> None:
    """What the routes take (werkzeug converters with bounds) is what the document says."""
    document = api.client.get("/api/v1/openapi.json").get_json()
    parameters = [
        (path, parameter["name"], parameter["schema"])
        for path, operations in document["paths"].items()
        for parameter in operations.get("parameters", [])
        if parameter["in"] == "path"
    ]
    assert len(parameters) > 30
    bounded = ("maximum", "maxLength", "format")  # format: uuid
    assert [
        (path, name) for path, name, schema in parameters if not set(bounded) & set(schema)
    ] == []
