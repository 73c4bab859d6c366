"""The REST API end to end on SQLite and PostgreSQL: secrets, versions, errors, no leaks."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import func, inspect, select, update

from adapters.db.tables import encrypted_values, metadata, secrets, versions
from tests.e2e.conftest import ApiClient

VALUE = "sk-live-e2e-4f1c9b7a2d6e8f0a"
VALUE_2 = "sk-live-e2e-second-9e8d7c6b5a"
ALL_VALUES = (VALUE, VALUE_2)


def counts(engine) -> tuple[int, int, int]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (secrets, versions, encrypted_values)
        )


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    return body["error"]


def test_lifecycle_over_http(api: ApiClient) -> None:
    created = api.post(
        "/secrets",
        json={
            "name": "OPENAI_API_KEY",
            "scope": {"type": "project", "id": "p-42"},
            "environment": "production",
            "value": VALUE,
            "consumer": "llm_model",
            "tags": {"team": "ml"},
        },
    )
    assert created.status_code == 201
    secret = created.get_json()
    assert "value" not in secret and VALUE not in created.get_data(as_text=True)
    assert created.headers["ETag"] == '"rev-1"'
    assert created.headers["Location"].endswith(f"/api/v1/secrets/{secret['id']}")
    assert secret["reference"] == "secret://project/p-42/OPENAI_API_KEY?env=production"
    assert secret["current_version"] == 1

    read = api.get(f"/secrets/{secret['id']}/value").get_json()
    assert (read["value"], read["version"], read["encoding"]) == (VALUE, 1, "utf-8")

    second = api.post(f"/secrets/{secret['id']}/versions", json={"value": VALUE_2})
    assert second.status_code == 201 and second.get_json()["current_version"] == 2
    assert api.get(f"/secrets/{secret['id']}/value").get_json()["value"] == VALUE_2
    assert api.get(f"/secrets/{secret['id']}/value?version=1").get_json()["value"] == VALUE

    by_path = api.get(
        "/scopes/project/p-42/secrets/OPENAI_API_KEY/value?environment=production"
    ).get_json()
    assert by_path["value"] == VALUE_2
    assert api.get("/scopes/project/p-42/secrets/OPENAI_API_KEY").status_code == 404

    history = api.get(f"/secrets/{secret['id']}/versions").get_json()["items"]
    assert [(v["version"], v["state"]) for v in history] == [(1, "enabled"), (2, "enabled")]

    listed = api.get("/secrets?scope_type=project&scope_id=p-42&tag=team=ml").get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == secret["id"]
    assert api.get("/secrets?tag=team=other").get_json()["total"] == 0

    deleted = api.delete(f"/secrets/{secret['id']}")
    assert deleted.status_code == 200 and deleted.get_json()["purge_after"]
    assert_error(api.get(f"/secrets/{secret['id']}"), 404, "not_found")
    assert_error(api.get(f"/secrets/{secret['id']}/value"), 404, "not_found")
    assert api.get("/secrets").get_json()["total"] == 0
    assert api.get("/secrets?deleted=true").get_json()["total"] == 1
    taken = api.post(
        "/secrets",
        json={
            "name": "OPENAI_API_KEY",
            "scope": {"type": "project", "id": "p-42"},
            "environment": "production",
            "value": "x",
        },
    )
    assert_error(taken, 409, "conflict")

    assert api.post(f"/secrets/{secret['id']}/restore").status_code == 200
    assert api.get(f"/secrets/{secret['id']}/value?version=1").get_json()["value"] == VALUE

    assert_error(api.post(f"/secrets/{secret['id']}/purge"), 409, "conflict")
    api.delete(f"/secrets/{secret['id']}")
    assert api.post(f"/secrets/{secret['id']}/purge").status_code == 204
    assert_error(api.get(f"/secrets/{secret['id']}?include_deleted=true"), 404, "not_found")


def test_check_and_set_with_if_match(api: ApiClient) -> None:
    secret = api.create(name="DB_PASSWORD", value=VALUE)
    url = f"/secrets/{secret['id']}/versions"
    ok = api.post(url, json={"value": VALUE_2}, headers={"If-Match": '"rev-1"'})
    assert ok.status_code == 201 and ok.headers["ETag"] == '"rev-2"'
    stale = api.post(url, json={"value": "lost"}, headers={"If-Match": '"rev-1"'})
    error = assert_error(stale, 412, "precondition_failed")
    assert error["details"]["revision"] == 2
    assert_error(
        api.post(url, json={"value": "x"}, headers={"If-Match": "nonsense"}),
        400,
        "validation_error",
    )
    patched = api.patch(
        f"/secrets/{secret['id']}", json={"description": "db"}, headers={"If-Match": '"rev-2"'}
    )
    assert patched.status_code == 200 and patched.get_json()["description"] == "db"
    history = api.get(f"/secrets/{secret['id']}/versions").get_json()["items"]
    assert [v["version"] for v in history] == [1, 2]


def test_binary_values_round_trip_as_base64(api: ApiClient) -> None:
    raw = bytes(range(256))
    secret = api.create(name="KEYSTORE", value=base64.b64encode(raw).decode(), encoding="base64")
    read = api.get(f"/secrets/{secret['id']}/value").get_json()
    assert read["encoding"] == "base64" and base64.b64decode(read["value"]) == raw
    assert_error(api.get(f"/secrets/{secret['id']}/value?encoding=utf-8"), 400, "validation_error")


def test_metadata_patch_and_expiry(api: ApiClient) -> None:
    secret = api.create(name="TOKEN", value=VALUE, expires_at="2099-01-01T00:00:00+00:00")
    expired = api.patch(f"/secrets/{secret['id']}", json={"expires_at": "2001-01-01T00:00:00Z"})
    assert expired.status_code == 200
    error = assert_error(api.get(f"/secrets/{secret['id']}/value"), 410, "secret_expired")
    assert error["details"]["expires_at"].startswith("2001-01-01")
    assert api.get(f"/secrets/{secret['id']}").status_code == 200
    cleared = api.patch(f"/secrets/{secret['id']}", json={"expires_at": None}).get_json()
    assert cleared["expires_at"] is None
    assert api.get(f"/secrets/{secret['id']}/value").get_json()["value"] == VALUE


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"name": "A", "value": VALUE, "valeu": 1}, 400, "validation_error", "valeu"),
        ({"name": "1BAD NAME", "value": VALUE}, 400, "validation_error", "name"),
        ({"name": "A"}, 400, "validation_error", "value"),
        ({"name": "A", "value": 5}, 400, "validation_error", "value"),
        ({"name": "A", "value": "%%%", "encoding": "base64"}, 400, "validation_error", "value"),
        (
            {"name": "A", "value": VALUE, "scope": {"type": "project"}},
            400,
            "validation_error",
            "scope",
        ),
        (
            {"name": "A", "value": VALUE, "scope": {"type": "galaxy", "id": "x"}},
            400,
            "validation_error",
            "scope",
        ),
        (
            {"name": "A", "value": VALUE, "environment": "Prod Env"},
            400,
            "validation_error",
            "environment",
        ),
        ({"name": "A", "value": VALUE, "backend": "nowhere"}, 400, "validation_error", "backend"),
        ({"name": "A", "value": "x" * (64 * 1024 + 1)}, 413, "value_too_large", "value"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    api: ApiClient, engine, body, status, code, field
) -> None:
    before = counts(engine)
    error = assert_error(api.post("/secrets", json=body), status, code)
    assert field in str(error["details"]) or field in error["message"]
    assert VALUE not in str(error)
    assert counts(engine) == before


def test_malformed_json_and_oversized_requests(api: ApiClient, engine) -> None:
    before = counts(engine)
    malformed = api.post(
        "/secrets", data='{"name": "A", "value": ', content_type="application/json"
    )
    assert_error(malformed, 400, "validation_error")
    huge = api.post("/secrets", json={"name": "A", "value": "y" * (300 * 1024)})
    assert_error(huge, 413, "request_too_large")
    assert counts(engine) == before


def test_write_errors_leave_versions_untouched(api: ApiClient, engine) -> None:
    secret = api.create(name="STABLE", value=VALUE)
    before = counts(engine)
    too_big = api.post(f"/secrets/{secret['id']}/versions", json={"value": "z" * 70000})
    assert_error(too_big, 413, "value_too_large")
    assert counts(engine) == before


def test_authentication_is_required(app, api: ApiClient) -> None:
    anonymous = ApiClient(app.test_client(), token=None)
    assert_error(anonymous.get("/secrets"), 401, "unauthenticated")
    assert_error(anonymous.get("/no-such-route"), 401, "unauthenticated")
    wrong = ApiClient(app.test_client(), token="not-the-token")
    error = assert_error(wrong.get("/secrets"), 401, "unauthenticated")
    assert "not-the-token" not in str(error)
    assert anonymous.get("/openapi.json").status_code == 200
    assert app.test_client().get("/healthz").status_code == 200


def test_openapi_document_declares_every_endpoint(app) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    for path in (
        "/api/v1/secrets",
        "/api/v1/secrets/{secret_id}",
        "/api/v1/secrets/{secret_id}/value",
        "/api/v1/secrets/{secret_id}/versions",
        "/api/v1/secrets/{secret_id}/versions/{version}",
        "/api/v1/secrets/{secret_id}/restore",
        "/api/v1/secrets/{secret_id}/purge",
        "/api/v1/scopes/{scope_type}/{scope_id}/secrets/{name}",
        "/api/v1/scopes/{scope_type}/{scope_id}/secrets/{name}/value",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    create = paths["/api/v1/secrets"]["post"]
    assert "requestBody" in create and "201" in create["responses"]
    write = paths["/api/v1/secrets/{secret_id}/versions"]["post"]
    assert any(p["name"] == "If-Match" for p in write["parameters"])
    assert "412" in write["responses"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert app.test_client().get("/api/v1/docs").status_code == 200


def test_readiness_reports_database_and_backends(app) -> None:
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    assert checks["database"]["ok"] and checks["backend:local"]["ok"]


def test_database_holds_no_plaintext(api: ApiClient, engine, settings) -> None:
    secret = api.create(name="PLAIN_CHECK", value=VALUE)
    api.post(f"/secrets/{secret['id']}/versions", json={"value": VALUE_2})
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                dump = repr(tuple(row)).encode()
                for value in ALL_VALUES:
                    assert value.encode() not in dump, table.name
    if engine.dialect.name == "sqlite":
        database_file = Path(engine.url.database)
        for path in database_file.parent.glob(database_file.name + "*"):
            content = path.read_bytes()
            for value in ALL_VALUES:
                assert value.encode() not in content, path


def test_every_table_is_prefixed(engine) -> None:
    names = inspect(engine).get_table_names()
    assert names and all(name.startswith("secret_") for name in names), names


def test_ciphertext_moved_to_another_version_does_not_decrypt(api: ApiClient, engine) -> None:
    secret = api.create(name="MOVED", value=VALUE)
    api.post(f"/secrets/{secret['id']}/versions", json={"value": VALUE_2})
    with engine.begin() as connection:
        rows = {
            row.version: row
            for row in connection.execute(
                select(encrypted_values).where(encrypted_values.c.secret_id == UUID(secret["id"]))
            )
        }
        connection.execute(
            update(encrypted_values)
            .where(encrypted_values.c.id == rows[2].id)
            .values(blob=rows[1].blob)
        )
    response = api.get(f"/secrets/{secret['id']}/value?version=2")
    error = assert_error(response, 500, "value_integrity_error")
    assert "version 2" in error["message"] or "integrity" in error["message"]
    assert VALUE not in response.get_data(as_text=True)
    assert api.get(f"/secrets/{secret['id']}/value?version=1").get_json()["value"] == VALUE


def test_no_value_in_logs_or_error_bodies(api: ApiClient, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []

    def record(response):
        bodies.append(response.get_data(as_text=True))
        return response

    secret = api.create(name="LOGGED", value=VALUE, scope={"type": "team", "id": "t-1"})
    sid = secret["id"]
    assert api.post(f"/secrets/{sid}/versions", json={"value": VALUE_2}).status_code == 201
    record(
        api.post(f"/secrets/{sid}/versions", json={"value": VALUE}, headers={"If-Match": '"rev-1"'})
    )
    record(
        api.post(
            "/secrets",
            json={"name": "LOGGED", "value": VALUE, "scope": {"type": "team", "id": "t-1"}},
        )
    )
    record(api.post("/secrets", json={"name": "bad name", "value": VALUE}))
    record(api.post("/secrets", json={"name": "X", "value": VALUE, "unknown": VALUE}))
    record(api.post("/secrets", json={"name": "X", "value": VALUE, "encoding": "base64"}))
    record(api.post("/secrets", json={"name": "X", "value": VALUE * 3000}))
    record(
        api.post(
            "/secrets", data=f'{{"name": "X", "value": "{VALUE}"', content_type="application/json"
        )
    )
    record(api.patch(f"/secrets/{sid}", json={"tags": {"k": VALUE * 20}}))
    api.delete(f"/secrets/{sid}")
    record(api.get(f"/secrets/{sid}/value"))
    error_bodies = [body for body in bodies if '"error"' in body]
    assert len(error_bodies) == len(bodies)
    for text in [*error_bodies, caplog.text]:
        for value in ALL_VALUES:
            assert value not in text
    assert "POST /api/v1/secrets" in caplog.text
