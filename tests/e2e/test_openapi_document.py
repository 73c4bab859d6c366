"""The OpenAPI document as a client generator and a fuzzer read it (issue #16): every operation
named (a unique `operationId`) and described, examples for the main resources, the error
statuses the service answers (400 `validation_error`, never webargs' 422; 403 where a caller
may see but not act), `security: []` on the probes alone, path parameters that a request the
document allows can fill with something that exists, and file answers with their content
types. The last tests send a request to every operation, as an admin and as a viewer: each
answer's status (and content type) is one the document declares for that operation."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from core.domain.values import ScopeType
from entrypoints.config import Settings
from entrypoints.http.app import create_app
from entrypoints.http.errors import codes_of
from tests.e2e.conftest import ApiClient, as_user

METHODS = ("get", "put", "post", "delete", "patch")
PROBES = {("/healthz", "get"), ("/readyz", "get")}
# The operations whose examples show the main resources: a request example for each one that
# takes a JSON body, and an example of its success answer.
EXAMPLES = {
    "list_secrets",
    "create_secret",
    "get_secret",
    "update_secret",
    "get_secret_value",
    "get_secret_by_path",
    "get_secret_value_by_path",
    "list_versions",
    "write_value",
    "get_secret_version",
    "rollback_secret",
    "rotate_secret",
    "get_secret_rotation_policy",
    "put_secret_rotation_policy",
    "resolve",
    "list_scopes",
    "create_scope",
    "get_scope",
    "list_role_bindings",
    "create_role_binding",
    "list_service_accounts",
    "create_service_account",
    "get_service_account",
    "list_tokens",
    "issue_token",
    "list_audit_events",
    "export_audit_events",
    "verify_audit_chain",
    "export_secrets",
}
# What an operation that only reads answers a caller who may see what it names: never 403
# (it answers 404 for what the caller may not see). Every other operation documents 403.
NEVER_FORBIDDEN = {
    "get_health",
    "get_ready",
    "whoami",
    "list_secrets",
    "get_secret",
    "get_secret_by_path",
    "list_versions",
    "get_secret_version",
    "get_secret_rotation_policy",
    "resolve",
    "list_scopes",
    "get_scope",
    "list_backends",
    "list_formats",
    "list_secret_types",
    "list_migrations",
    "stream_events",
    "poll_events",
    "read_values_by_reference",  # each reference's own error is an item of its 200 answer
}
# The operations that check a value against its secret type, or a whole file: 422.
UNPROCESSABLE = {
    "create_secret",
    "write_value",
    "rollback_secret",
    "rotate_secret",
    "import_secrets",
    # …and those that expand `${secret://…}` references (`expand=true`): cycles, depth, access.
    "get_secret_value",
    "get_secret_value_by_path",
    "read_value_by_reference",
    "resolve",
}


# Path parameters of something that exists (or could), but for the ids of fixtures.
NAMES = {
    "scope_type": "project",
    "scope_id": "p-42",
    "name": "OPENAI_API_KEY",
    "backend": "local",
    "version": "1",
    "job_id": str(uuid.uuid4()),
}


@pytest.fixture
def document(api: ApiClient) -> dict[str, Any]:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def parameters_of(document: dict[str, Any], path: str, operation: dict[str, Any]) -> list[Any]:
    return [*document["paths"][path].get("parameters", []), *operation.get("parameters", [])]


def is_text_path_parameter(parameter: dict[str, Any]) -> bool:
    schema = parameter["schema"]
    return parameter["in"] == "path" and schema["type"] == "string" and "format" not in schema


def validator(document: dict[str, Any], schema: dict[str, Any]) -> OAS30Validator:
    """A validator of `schema`, whose `$ref`s point into the document."""
    registry = Registry().with_resource(
        "urn:document", Resource.from_contents(document, default_specification=DRAFT4)
    )
    refer = json.dumps(schema).replace('"#/', '"urn:document#/')
    return OAS30Validator(json.loads(refer), registry=registry)


def test_every_operation_has_a_unique_snake_case_operation_id(document: dict[str, Any]) -> None:
    names = [operation.get("operationId", "") for _, _, operation in operations(document)]
    assert len(names) >= 60
    assert [name for name in names if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name)] == []
    assert len(set(names)) == len(names)


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        assert operation.get("summary", "").strip(), (method, path)
        description = operation.get("description", "")
        assert description.startswith(operation["summary"]), (method, path)


def test_a_request_that_breaks_its_schema_is_documented_and_answered_as_400(
    api: ApiClient, document: dict[str, Any]
) -> None:
    for path, method, operation in operations(document):
        parameters = parameters_of(document, path, operation)
        checked = (
            "requestBody" in operation
            or any(parameter["in"] == "query" for parameter in parameters)
            or any(is_text_path_parameter(parameter) for parameter in parameters)
            or any(parameter["name"] == "If-Match" for parameter in parameters)
        )
        responses = operation["responses"]
        assert ("400" in responses) == checked, (method, path)
        if checked:
            assert "`validation_error`" in responses["400"]["description"]
        assert ("422" in responses) == (operation["operationId"] in UNPROCESSABLE), (method, path)
    for response in (api.post("/secrets", json={}), api.get("/secrets?page=first")):
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"]["code"] == "validation_error"


def test_403_is_documented_wherever_a_caller_may_see_but_not_act(
    document: dict[str, Any],
) -> None:
    forbidden = {
        operation["operationId"]
        for _, _, operation in operations(document)
        if "403" in operation["responses"]
    }
    every = {operation["operationId"] for _, _, operation in operations(document)}
    assert forbidden == every - NEVER_FORBIDDEN


def test_only_the_probes_take_no_token(settings: Settings, document: dict[str, Any]) -> None:
    """`security: []` exactly where the service answers without a token; every other
    operation documents the answers of the token's check (401, 429) and of the database."""
    app = create_app(replace(settings, auth={"failures_per_minute": 0}))  # 60 failures
    anonymous = app.test_client()
    names = {**NAMES, "secret_id": str(uuid.uuid4()), "binding_id": str(uuid.uuid4())}
    names |= {"account_id": str(uuid.uuid4()), "token_id": str(uuid.uuid4())}
    for path, method, operation in operations(document):
        url = path.format(**names)
        answer = anonymous.open(url, method=method.upper())
        if (path, method) in PROBES:
            assert operation["security"] == [], path
            assert answer.status_code == 200, path
            continue
        assert "security" not in operation, (method, path)  # the document's: bearerAuth
        assert {"401", "429", "503"} <= set(operation["responses"]), (method, path)
        assert answer.status_code == 401, (method, path, answer.get_json())
    assert document["security"] == [{"bearerAuth": []}]
    app.extensions["container"].shutdown_resources()


def test_every_error_answer_has_the_error_body_its_codes_and_an_example(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status == "default" or int(status) < 400 or (path, method) in PROBES:
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, status)
            codes = codes_of(int(status))
            assert content["example"]["error"]["code"] in codes, (path, status)
            assert all(f"`{code}`" in response["description"] for code in codes)


def test_path_parameters_name_only_what_can_exist(
    document: dict[str, Any], settings: Settings
) -> None:
    schemas: dict[str, list[dict[str, Any]]] = {}
    for path, item in document["paths"].items():
        for parameter in item.get("parameters", []):
            assert parameter["in"] == "path", path
            schemas.setdefault(parameter["name"], []).append(parameter["schema"])
    assert set(schemas) == {
        "secret_id",
        "version",
        "scope_type",
        "scope_id",
        "name",
        "backend",
        "binding_id",
        "account_id",
        "token_id",
        "job_id",
    }
    for name, found in schemas.items():
        for schema in found:
            if schema["type"] == "integer":
                assert schema["minimum"] == 1, name
            elif "format" in schema:
                assert schema["format"] == "uuid", name
            else:
                assert "enum" in schema or "pattern" in schema, name
    assert schemas["scope_type"][0]["enum"] == [kind.value for kind in ScopeType]
    assert schemas["name"][0]["pattern"] == settings.name_pattern
    assert schemas["backend"][0]["enum"] == sorted(settings.backends)


@pytest.mark.parametrize(
    "path",
    [
        "/scopes/global/elsewhere",
        "/scopes/global/elsewhere/secrets/A",
        "/scopes/global/elsewhere/secrets/A/value",  # the hot path's route
        "/secrets?scope_type=global&scope_id=elsewhere",
    ],
)
def test_the_global_scope_has_one_id(api: ApiClient, path: str) -> None:
    """What breaks the scope id's pattern is refused, even where the type is `global` (whose
    id a path used to ignore): a request is valid only if the document allows it."""
    api.create(name="A", value="v")
    answer = api.get(path)
    assert answer.status_code == 404, answer.get_json()
    assert answer.get_json()["error"]["message"] == "the global scope's id is 'global'"
    assert api.get(path.replace("elsewhere", "global")).status_code == 200


def test_a_configured_name_pattern_and_backends_are_what_the_document_says(
    settings: Settings,
) -> None:
    backends = {**settings.backends, "archive": {"plugin": "local"}}
    app = create_app(replace(settings, name_pattern=r"^[A-Z][A-Z0-9_]{0,63}$", backends=backends))
    try:
        document = app.test_client().get("/api/v1/openapi.json").get_json()
    finally:
        app.extensions["container"].shutdown_resources()
    paths = document["paths"]
    name = paths["/api/v1/scopes/{scope_type}/{scope_id}/secrets/{name}"]["parameters"][2]
    assert name["schema"]["pattern"] == r"^[A-Z][A-Z0-9_]{0,63}$"
    backend = paths["/api/v1/backends/{backend}/adopt"]["parameters"][0]
    assert backend["schema"]["enum"] == ["archive", "local"]


def test_the_main_operations_have_examples_that_the_document_accepts(
    document: dict[str, Any],
) -> None:
    named = {operation["operationId"]: operation for _, _, operation in operations(document)}
    assert EXAMPLES <= set(named)
    for operation_id in sorted(EXAMPLES):
        operation = named[operation_id]
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert "example" in body, operation_id
        success = next(
            response
            for status, response in operation["responses"].items()
            if status.isdigit() and int(status) < 300
        )
        assert any("example" in content for content in success["content"].values()), operation_id
    for _, _, operation in operations(document):
        for content in operation.get("requestBody", {}).get("content", {}).values():
            if "example" in content:
                assert_valid(document, content["schema"], content["example"], request=True)
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                if "example" in content and media_type == "application/json":
                    assert_valid(document, content["schema"], content["example"])


def assert_valid(
    document: dict[str, Any], schema: dict[str, Any], example: Any, request: bool = False
) -> None:
    """`example` is valid for `schema`; an answer's example shows every field it has."""
    errors = [error.message for error in validator(document, schema).iter_errors(example)]
    assert errors == [], (schema, errors)
    if request or "$ref" not in schema:
        return
    properties = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert set(example) == set(properties.get("properties", {})), schema


def test_file_answers_declare_their_content_types(
    api: ApiClient, document: dict[str, Any], app: Flask
) -> None:
    paths = document["paths"]
    audit = paths["/api/v1/audit/export"]["get"]["responses"]["200"]["content"]
    assert set(audit) == {"application/x-ndjson", "text/csv"}
    exports = paths["/api/v1/exports"]["post"]["responses"]["200"]["content"]
    media_types = {media_type.split(";")[0] for media_type in exports}
    installed = {f.media_type.split(";")[0] for f in app.extensions["container"].formats()}
    assert installed | {"application/octet-stream"} == media_types
    api.create(name="A", value="v", scope={"type": "project", "id": "p-42"})
    scope = {"type": "project", "id": "p-42"}
    for body in (
        {"scope": scope, "format": "json"},
        {"scope": scope, "format": "dotenv", "include_values": True},
        {"scope": scope, "format": "json", "passphrase": "correct horse battery staple"},
    ):
        exported = api.post("/exports", json=body)
        assert exported.status_code == 200, exported.get_json()
        assert exported.mimetype in media_types, body
    for kind in ("jsonl", "csv"):
        answer = api.get(f"/audit/export?format={kind}")
        assert answer.status_code == 200 and answer.mimetype in audit, kind
        assert answer.get_data()


@pytest.fixture
def fixtures(api: ApiClient) -> dict[str, str]:
    """What the path parameters of every operation name: a secret with two versions, a
    service account with a token, a role binding (a viewer's, at the global scope)."""
    secret = api.create(name="OPENAI_API_KEY", value="v1", scope={"type": "project", "id": "p-42"})
    api.post(f"/secrets/{secret['id']}/versions", json={"value": "v2"})
    account = api.post(
        "/service-accounts", json={"name": "ci", "scope": {"type": "project", "id": "p-42"}}
    ).get_json()
    token = api.post(f"/service-accounts/{account['id']}/tokens", json={}).get_json()
    binding = api.post(
        "/role-bindings",
        json={"principal": "user:vera", "role": "viewer", "scope": {"type": "global"}},
    ).get_json()
    return NAMES | {
        "secret_id": secret["id"],
        "account_id": account["id"],
        "token_id": token["id"],
        "binding_id": binding["id"],
    }


@pytest.mark.parametrize("caller", ["viewer", "admin"])
def test_every_answer_is_a_status_the_document_declares(
    app: Flask,
    api: ApiClient,
    document: dict[str, Any],
    fixtures: dict[str, str],
    caller: str,
) -> None:
    """One request per operation, its body the documented example (or empty), as a viewer of
    everything (who may act on nothing: the 403s) and then as an admin."""
    client = as_user(app, "vera") if caller == "viewer" else api
    undeclared = []
    for path, method, operation in operations(document):
        url = path.removeprefix("/api/v1").format(**fixtures)
        if "text/event-stream" in operation["responses"].get("200", {}).get("content", {}):
            url += "?max_seconds=1"  # a change stream ends only when asked to
        content = operation.get("requestBody", {}).get("content", {})
        if "multipart/form-data" in content:
            answer = client.request(method, url, data={}, content_type="multipart/form-data")
        elif content:
            answer = client.request(
                method, url, json=content["application/json"].get("example", {})
            )
        else:
            answer = client.request(method, url) if path.startswith("/api/") else None
        if answer is None:
            continue
        declared = operation["responses"].get(str(answer.status_code))
        if declared is None:
            undeclared.append((method, path, answer.status_code, answer.get_json()))
        elif answer.data and "content" in declared:
            types = {media_type.split(";")[0] for media_type in declared["content"]}
            assert answer.mimetype in types, (method, path, answer.mimetype)
    assert undeclared == []
