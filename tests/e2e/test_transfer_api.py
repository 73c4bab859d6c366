"""Import, export and typed secrets over HTTP, on the whole app (SQLite and PostgreSQL): dry runs
and strategies, all-or-nothing imports with errors by line, exports that take an admin to hold
values and audit each one, sealed files, byte-for-byte .env round trips — and no value anywhere
it should not be."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import ApiClient, as_user
from tests.unit.test_formats import NASTY_DOTENV, NASTY_VALUES

PROJECT = {"type": "project", "id": "p-42"}
PASSPHRASE = "correct horse battery staple"
CANARY = "sk-transfer-canary-7c1e9d"
CANARY_2 = "sk-transfer-canary-second-4b2a"


def upload(api: ApiClient, content: bytes, filename: str = "app.env", **form: str) -> Any:
    form.setdefault("scope_type", "project")
    form.setdefault("scope_id", "p-42")
    return api.post(
        "/imports",
        data={**form, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def export(api: ApiClient, **body: Any) -> Any:
    body.setdefault("scope", PROJECT)
    return api.post("/exports", json=body)


def value_of(api: ApiClient, name: str, environment: str | None = None) -> str:
    query = {"environment": environment} if environment else {}
    answer = api.get(f"/scopes/project/p-42/secrets/{name}/value", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["value"])


def names(api: ApiClient) -> set[str]:
    page = api.get("/secrets", query_string={"scope_type": "project", "scope_id": "p-42"})
    return {item["name"] for item in page.get_json()["items"]}


def test_a_nasty_dotenv_file_round_trips_byte_for_byte(api: ApiClient) -> None:
    imported = upload(api, NASTY_DOTENV, environment="production")
    assert imported.status_code == 200, imported.get_json()
    assert imported.get_json()["counts"]["create"] == len(NASTY_VALUES)

    exported = export(api, environment="production", format="dotenv", include_values=True)

    assert exported.status_code == 200
    assert exported.data == NASTY_DOTENV
    assert exported.headers["Content-Disposition"] == (
        'attachment; filename="project-p-42-production.env"'
    )
    assert value_of(api, "K_CRLF_MULTILINE", "production") == "line one\r\nline two"


def test_a_dry_run_diffs_and_each_strategy_does_its_part(api: ApiClient) -> None:
    assert upload(api, b"SAME=1\nOTHER=old\n").status_code == 200
    changed = b"SAME=1\nOTHER=new\nNEW=fresh\n"

    dry = upload(api, changed, dry_run="true", strategy="overwrite").get_json()
    assert [(i["line"], i["name"], i["action"]) for i in dry["items"]] == [
        (1, "SAME", "unchanged"),
        (2, "OTHER", "update"),
        (3, "NEW", "create"),
    ]
    assert names(api) == {"SAME", "OTHER"}

    failed = upload(api, changed, strategy="fail")
    assert failed.status_code == 409
    assert failed.get_json()["error"]["details"]["conflicts"] == [
        {"line": 2, "name": "OTHER", "reason": "holds another value"}
    ]
    assert names(api) == {"SAME", "OTHER"}

    skipped = upload(api, changed, strategy="skip").get_json()
    assert skipped["counts"] == {
        "create": 1,
        "update": 0,
        "unchanged": 1,
        "skipped": 1,
        "conflict": 0,
    }
    assert value_of(api, "OTHER") == "old"

    overwritten = upload(api, changed, strategy="overwrite").get_json()
    assert overwritten["counts"]["update"] == 1 and value_of(api, "OTHER") == "new"
    assert overwritten["items"][1]["version"] == 2


def test_a_file_with_errors_imports_nothing_and_names_each_line(api: ApiClient) -> None:
    content = b'GOOD=1\nthis line is broken "\n9BAD=x\nGOOD=again\n'

    answer = upload(api, content)
    dry = upload(api, content, dry_run="true")

    assert answer.status_code == 422
    body = answer.get_json()["error"]
    assert body["code"] == "invalid_import"
    assert [(e["line"], e["field"]) for e in body["details"]["errors"]] == [
        (2, None),
        (3, "name"),
        (4, "name"),
    ]
    assert names(api) == set()
    assert dry.status_code == 200 and len(dry.get_json()["errors"]) == 3


def test_the_file_format_comes_from_its_name_or_the_form(api: ApiClient) -> None:
    flat = json.dumps({"FROM_JSON": "j"}).encode()

    assert upload(api, flat, filename="secrets.json").status_code == 200
    assert upload(api, b"FROM_FORM=f\n", filename="noext", format="dotenv").status_code == 200
    unnamed = upload(api, b"X=1\n", filename="noext").get_json()["error"]

    assert names(api) == {"FROM_JSON", "FROM_FORM"}
    assert unnamed["details"] == {"field": "format"}


def test_exported_values_take_an_admin_and_every_value_read_is_audited(
    app: Flask, api: ApiClient
) -> None:
    upload(api, f"A_KEY={CANARY}\nB_KEY={CANARY_2}\n".encode())
    for principal, role in (("user:ed", "editor"), ("user:ada", "admin")):
        body = {"principal": principal, "role": role, "scope": PROJECT}
        assert api.post("/role-bindings", json=body).status_code == 201
    editor, admin = as_user(app, "ed"), as_user(app, "ada")

    refused = export(editor, format="json", include_values=True)
    metadata = export(editor, format="json")
    values = export(admin, format="json", include_values=True)

    assert refused.status_code == 403
    assert metadata.status_code == 200 and CANARY.encode() not in metadata.data
    assert {s["name"] for s in json.loads(metadata.data)["secrets"]} == {"A_KEY", "B_KEY"}
    assert values.status_code == 200 and values.headers["X-Export-Values"] == "2"
    assert [s["value"] for s in json.loads(values.data)["secrets"]] == [CANARY, CANARY_2]
    reads = api.get(
        "/audit/events", query_string={"action": "secret.read_value", "actor": "user:ada"}
    ).get_json()["items"]
    assert len(reads) == 2 and all(e["details"] == {"via": "export"} for e in reads)
    exports = api.get("/audit/events", query_string={"action": "secret.export"}).get_json()
    outcomes = sorted((e["actor"], e["outcome"]) for e in exports["items"])
    assert outcomes == [("user:ada", "success"), ("user:ed", "denied"), ("user:ed", "success")]


def test_a_sealed_export_holds_no_plaintext_and_imports_back(api: ApiClient) -> None:
    upload(api, f"A_KEY={CANARY}\n".encode())
    api.post(
        "/secrets/" + api.get("/scopes/project/p-42/secrets/A_KEY").get_json()["id"] + "/versions",
        json={"value": CANARY_2},
    )

    sealed = export(
        api, format="json", include_values=True, include_versions=True, passphrase=PASSPHRASE
    )
    assert sealed.status_code == 200 and sealed.data.startswith(b"SMSEALED")
    assert CANARY.encode() not in sealed.data and sealed.mimetype == "application/octet-stream"

    def restore(passphrase: str) -> Any:
        new_project = {"scope_id": "p-43", "parent_type": "team", "parent_id": "t-1"}
        return upload(api, sealed.data, "backup.sealed", passphrase=passphrase, **new_project)

    wrong = restore("not the passphrase")
    assert wrong.status_code == 400 and wrong.get_json()["error"]["details"] == {
        "field": "passphrase"
    }
    restored = restore(PASSPHRASE)
    assert restored.status_code == 200, restored.get_json()
    assert restored.get_json()["format"] == "json"
    copy = api.get("/scopes/project/p-43/secrets/A_KEY").get_json()
    assert copy["current_version"] == 2
    versions = [
        api.get(f"/secrets/{copy['id']}/value", query_string={"version": n}).get_json()["value"]
        for n in (1, 2)
    ]
    assert versions == [CANARY, CANARY_2]


def test_a_file_over_the_import_limit_is_413(settings: Settings) -> None:
    app = create_app(replace(settings, max_import_bytes=4096))
    try:
        api = ApiClient(app.test_client())
        answer = upload(api, b"A=" + b"x" * 8192 + b"\n", scope_type="global", scope_id="global")
        small = upload(api, b"A=1\n", scope_type="global", scope_id="global")
    finally:
        app.extensions["container"].shutdown_resources()

    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200


def test_no_value_lands_in_an_error_body_the_audit_trail_or_a_log(
    api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = [
        upload(api, f"GOOD={CANARY}\n9BAD={CANARY_2}\n".encode()).get_data(as_text=True),
        upload(api, f"A={CANARY}\n".encode()).get_data(as_text=True),
        upload(api, f"A={CANARY_2}\n".encode(), strategy="fail").get_data(as_text=True),
        api.post(
            "/secrets", json={"name": "PIN", "type": "api_key", "value": f"{CANARY} {CANARY_2}"}
        ).get_data(as_text=True),
        export(api, format="dotenv", include_values=True, passphrase=PASSPHRASE).data.decode(
            "latin-1"
        ),
    ]

    places = {"answers": "\n".join(bodies), "logs": caplog.text}
    places["audit"] = api.get("/audit/export?format=jsonl").get_data(as_text=True)
    for place, content in places.items():
        for canary in (CANARY, CANARY_2):
            assert canary not in content, place
    assert '"action":"secret.import"' in places["audit"]


# -- typed secrets ------------------------------------------------------------------------------


def certificate_pair(not_after: datetime) -> tuple[str, str, str]:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.internal")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )

    def pem(private: Any) -> str:
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    return certificate.public_bytes(serialization.Encoding.PEM).decode(), pem(key), pem(other)


def test_typed_secrets_are_checked_and_reveal_only_what_is_not_secret(api: ApiClient) -> None:
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    certificate, key, other_key = certificate_pair(not_after)

    good = api.post(
        "/secrets",
        json={"name": "TLS", "type": "certificate", "value": key + certificate, "scope": PROJECT},
    )
    mismatch = api.post(
        "/secrets",
        json={"name": "TLS2", "type": "certificate", "value": other_key + certificate},
    )
    database = api.post(
        "/secrets",
        json={"name": "DB", "type": "connection_string", "value": "postgresql://app:pw@db/x:1"},
    )
    unknown = api.post("/secrets", json={"name": "U", "type": "nope", "value": "v"})

    assert good.status_code == 201, good.get_json()
    created = good.get_json()
    assert datetime.fromisoformat(created["expires_at"]) == not_after
    assert created["tags"]["type.subject"] == "CN=api.internal"
    assert mismatch.status_code == 422
    assert mismatch.get_json()["error"]["details"]["field"] == "private_key"
    assert "PRIVATE KEY" not in mismatch.get_data(as_text=True)
    assert database.status_code == 201 and "pw" not in json.dumps(database.get_json()["tags"])
    assert unknown.status_code == 400 and unknown.get_json()["error"]["details"] == {
        "field": "type"
    }
    types = {t["name"]: t for t in api.get("/secret-types").get_json()["items"]}
    assert types["connection_string"]["sensitive_fields"] == ["options", "password"]
    formats = {f["name"] for f in api.get("/formats").get_json()["items"]}
    assert formats == {"dotenv", "json", "json-flat"}


def test_the_openapi_document_declares_the_transfer_endpoints(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()

    upload_body = spec["paths"]["/api/v1/imports"]["post"]["requestBody"]["content"]
    form = spec["components"]["schemas"]["ImportForm"]
    assert list(upload_body) == ["multipart/form-data"]
    assert form["properties"]["file"]["format"] == "binary"
    assert form["properties"]["passphrase"].get("writeOnly") is True
    assert {"422", "413", "409"} <= set(spec["paths"]["/api/v1/imports"]["post"]["responses"])
    assert "requestBody" in spec["paths"]["/api/v1/exports"]["post"]
    assert {"/api/v1/formats", "/api/v1/secret-types"} <= set(spec["paths"])
