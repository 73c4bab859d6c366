"""The Vault KV v2-compatible API through clients nobody here wrote: hvac and the `bao` CLI,
against the app served on a loopback port (docs/vault-compat.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from tests.e2e.conftest import TOKEN, ApiClient, user_token
from tests.e2e.test_serve import free_port, running_server, serve_env

BAO = Path(sys.executable).parent / "bao"
DB_PATH = "project/p-42/production/DB"
CREDENTIALS = {"username": "app", "password": "pw-kv-canary-51c0ffee"}


@pytest.fixture
def server(app: Flask, api: ApiClient) -> Iterator[str]:
    """The app behind a threaded HTTP server on a free loopback port."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def kv(server: str) -> Any:
    """hvac's KV v2 API as the development root."""
    return hvac.Client(url=server, token=TOKEN).secrets.kv.v2


def kv_as(server: str, token: str) -> Any:
    return hvac.Client(url=server, token=token).secrets.kv.v2


def grant(api: ApiClient, principal: str, role: str, scope: tuple[str, str]) -> None:
    body = {"principal": principal, "role": role, "scope": {"type": scope[0], "id": scope[1]}}
    response = api.post("/role-bindings", json=body)
    assert response.status_code == 201, response.get_json()


def audit_events(api: ApiClient, **query: str) -> list[dict[str, Any]]:
    response = api.get("/audit/events", query_string={"limit": "1000", **query})
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def test_hvac_writes_reads_lists_and_deletes(kv: Any, api: ApiClient) -> None:
    written = kv.create_or_update_secret(path=DB_PATH, secret=CREDENTIALS, mount_point="secret")
    assert written["data"]["version"] == 1
    assert set(written) >= {"request_id", "lease_id", "renewable", "lease_duration", "data"}
    assert set(written["data"]) == {
        "created_time",
        "custom_metadata",
        "deletion_time",
        "destroyed",
        "version",
    }

    read = kv.read_secret_version(path=DB_PATH, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == CREDENTIALS
    assert read["data"]["metadata"]["version"] == 1
    assert read["data"]["metadata"]["destroyed"] is False
    assert read["data"]["metadata"]["deletion_time"] == ""

    newer = {**CREDENTIALS, "password": "pw-kv-canary-2"}
    assert kv.create_or_update_secret(path=DB_PATH, secret=newer, cas=1)["data"]["version"] == 2
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        kv.create_or_update_secret(path=DB_PATH, secret=CREDENTIALS, cas=1)
    assert refused.value.errors == ["check-and-set parameter did not match the current version"]
    with pytest.raises(hvac.exceptions.InvalidRequest):  # cas=0: only a secret that is new
        kv.create_or_update_secret(path=DB_PATH, secret=CREDENTIALS, cas=0)

    latest = kv.read_secret_version(path=DB_PATH, raise_on_deleted_version=True)
    assert latest["data"]["data"] == newer
    first = kv.read_secret_version(path=DB_PATH, version=1, raise_on_deleted_version=True)
    assert first["data"]["data"] == CREDENTIALS

    metadata = kv.read_secret_metadata(path=DB_PATH)["data"]
    assert metadata["current_version"] == 2 and metadata["oldest_version"] == 1
    assert set(metadata["versions"]) == {"1", "2"}
    assert metadata["versions"]["1"]["destroyed"] is False

    assert kv.list_secrets(path="")["data"]["keys"] == ["project/"]
    assert kv.list_secrets(path="project")["data"]["keys"] == ["p-42/"]
    assert kv.list_secrets(path="project/p-42")["data"]["keys"] == ["production/"]
    assert kv.list_secrets(path="project/p-42/production/")["data"]["keys"] == ["DB"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets(path="project/p-42/staging")

    # The same secret through the REST API: one generic secret, its value the canonical JSON.
    rest = api.get(
        "/scopes/project/p-42/secrets/DB/value", query_string={"environment": "production"}
    )
    assert json.loads(rest.get_json()["value"]) == newer
    assert rest.get_json()["version"] == 2

    # Audited as the REST API's own requests are, and never with a value.
    secret_id = rest.get_json()["id"]
    recorded = audit_events(api, secret=secret_id)
    by_action = {(e["action"], e["outcome"], e["actor"]) for e in recorded}
    assert {
        ("secret.create", "success", "root"),
        ("secret.write_value", "success", "root"),
        ("secret.read_value", "success", "root"),
        ("secret.list_versions", "success", "root"),
    } <= by_action, by_action
    assert not any(CREDENTIALS["password"] in json.dumps(e) for e in audit_events(api))

    kv.delete_latest_version_of_secret(path=DB_PATH)
    with pytest.raises(hvac.exceptions.InvalidPath) as missing:
        kv.read_secret_version(path=DB_PATH, raise_on_deleted_version=True)
    assert missing.value.errors == []
    deleted = api.get("/secrets", query_string={"deleted": "true", "scope_type": "project"})
    assert [item["name"] for item in deleted.get_json()["items"]] == ["DB"]  # restorable
    with pytest.raises(hvac.exceptions.InvalidRequest) as reserved:  # its name stays reserved
        kv.create_or_update_secret(path=DB_PATH, secret=CREDENTIALS)
    assert "restore" in reserved.value.errors[0]
    assert CREDENTIALS["password"] not in reserved.value.errors[0]

    kv.undelete_secret_versions(path=DB_PATH, versions=[2])  # the secret comes back
    again = kv.read_secret_version(path=DB_PATH, raise_on_deleted_version=True)
    assert again["data"]["data"] == newer
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.undelete_secret_versions(path="project/p-42/production/NEVER", versions=[1])


def test_typed_secret_reads_as_its_fields_and_keeps_its_checks(kv: Any, api: ApiClient) -> None:
    aws = {
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "region": "eu-west-1",
    }
    scope = {"type": "project", "id": "p-42"}
    api.create(name="AWS", value=aws, type="aws_credentials", scope=scope)
    read = kv.read_secret_version(path="project/p-42/_/AWS", raise_on_deleted_version=True)
    assert read["data"]["data"] == aws
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:  # its type's check, as ever
        kv.create_or_update_secret(path="project/p-42/_/AWS", secret={"secret_access_key": "x"})
    assert "aws_credentials" in refused.value.errors[0]


def test_plain_text_reads_as_value_and_versions_map_onto_states(kv: Any, api: ApiClient) -> None:
    created = api.create(
        name="API_KEY", value="sk-plain-text-1", scope={"type": "project", "id": "p-42"}
    )
    path = "project/p-42/_/API_KEY"
    read = kv.read_secret_version(path=path, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"value": "sk-plain-text-1"}

    kv.create_or_update_secret(path=path, secret={"value": "sk-plain-text-2"})
    kv.delete_secret_versions(path=path, versions=[1])  # disabled: deleted, as KV says
    versions = kv.read_secret_metadata(path=path)["data"]["versions"]
    assert versions["1"]["deletion_time"] != "" and versions["2"]["deletion_time"] == ""
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path=path, version=1, raise_on_deleted_version=True)
    states = api.get(f"/secrets/{created['id']}/versions").get_json()["items"]
    assert [v["state"] for v in states] == ["disabled", "enabled"]

    kv.undelete_secret_versions(path=path, versions=[1])
    assert kv.read_secret_version(path=path, version=1, raise_on_deleted_version=True)
    kv.destroy_secret_versions(path=path, versions=[1])
    assert kv.read_secret_metadata(path=path)["data"]["versions"]["1"]["destroyed"] is True
    with pytest.raises(hvac.exceptions.InvalidRequest):  # the current version stays
        kv.delete_secret_versions(path=path, versions=[2])


def test_sys_mounts_say_kv_version_2(server: str) -> None:
    client = hvac.Client(url=server, token=TOKEN)
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"] == {"version": "2"}


def bao(server: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "BAO_ADDR": server,
        "BAO_TOKEN": token,
        "VAULT_ADDR": server,
        "VAULT_TOKEN": token,
    }
    return subprocess.run(
        [str(BAO), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_bao_cli_puts_gets_lists_and_reads_metadata(server: str) -> None:
    put = bao(server, TOKEN, "kv", "put", "-mount=secret", "project/p-42/_/WEBHOOK", "k=v1")
    assert put.returncode == 0, put.stderr
    bao(server, TOKEN, "kv", "put", "-mount=secret", "project/p-42/_/WEBHOOK", "k=v2", "n=2")

    got = bao(server, TOKEN, "kv", "get", "-format=json", "-mount=secret", "project/p-42/_/WEBHOOK")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["data"]["data"] == {"k": "v2", "n": "2"}
    old = bao(server, TOKEN, "kv", "get", "-version=1", "-field=k", "secret/project/p-42/_/WEBHOOK")
    assert (old.returncode, old.stdout) == (0, "v1"), old.stderr

    listed = bao(server, TOKEN, "kv", "list", "-format=json", "-mount=secret", "project/p-42/_")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == ["WEBHOOK"]

    metadata = bao(
        server, TOKEN, "kv", "metadata", "get", "-format=json", "secret/project/p-42/_/WEBHOOK"
    )
    assert metadata.returncode == 0, metadata.stderr
    assert json.loads(metadata.stdout)["data"]["current_version"] == 2

    missing = bao(server, TOKEN, "kv", "get", "-mount=secret", "project/p-42/_/NOTHING")
    assert missing.returncode == 2 and "No value found" in missing.stderr

    deleted = bao(server, TOKEN, "kv", "delete", "-mount=secret", "project/p-42/_/WEBHOOK")
    assert deleted.returncode == 0, deleted.stderr
    gone = bao(server, TOKEN, "kv", "get", "-mount=secret", "project/p-42/_/WEBHOOK")
    assert gone.returncode == 2
    back = bao(
        server, TOKEN, "kv", "undelete", "-versions=2", "-mount=secret", "project/p-42/_/WEBHOOK"
    )
    assert back.returncode == 0, back.stderr
    again = bao(server, TOKEN, "kv", "get", "-field=n", "-mount=secret", "project/p-42/_/WEBHOOK")
    assert (again.returncode, again.stdout) == (0, "2"), again.stderr


def test_a_reader_reads_and_cannot_write_another_org_is_not_found(
    server: str, kv: Any, api: ApiClient
) -> None:
    api.register_scope("organization", "other", ("global", "global"))
    kv.create_or_update_secret(path=DB_PATH, secret=CREDENTIALS)
    kv.create_or_update_secret(path="organization/other/_/THEIRS", secret={"k": "theirs"})
    grant(api, "user:rita", "reader", ("project", "p-42"))
    rita = kv_as(server, user_token("rita"))

    assert (
        rita.read_secret_version(path=DB_PATH, raise_on_deleted_version=True)["data"]["data"]
        == CREDENTIALS
    )
    with pytest.raises(hvac.exceptions.Forbidden) as refused:
        rita.create_or_update_secret(path=DB_PATH, secret={"password": "mine"})
    assert refused.value.errors == ["permission denied"]
    with pytest.raises(hvac.exceptions.Forbidden):
        rita.create_or_update_secret(path="project/p-42/_/NEW", secret={"k": "v"})
    with pytest.raises(hvac.exceptions.InvalidPath):  # out of her sight: as if it were not there
        rita.read_secret_version(path="organization/other/_/THEIRS", raise_on_deleted_version=True)
    assert rita.list_secrets(path="")["data"]["keys"] == ["project/"]

    events = audit_events(api)
    read = [e for e in events if e["actor"] == "user:rita" and e["action"] == "secret.read_value"]
    assert sorted(
        (e["outcome"], e["resource"].startswith("secret:organization/")) for e in read
    ) == [
        ("not_found", True),
        ("success", False),
    ]
    writes = [
        e for e in events if e["actor"] == "user:rita" and e["action"] == "secret.write_value"
    ]
    assert writes and all(e["outcome"] == "denied" for e in writes)
    assert CREDENTIALS["password"] not in json.dumps(events)


def test_tokens_of_this_service_authenticate_others_are_refused(
    server: str, app: Flask, api: ApiClient
) -> None:
    account = api.post(
        "/service-accounts", json={"name": "eso", "scope": {"type": "project", "id": "p-42"}}
    ).get_json()
    grant(api, account["principal"], "editor", ("project", "p-42"))
    issued = api.post(f"/service-accounts/{account['id']}/tokens", json={"description": "eso"})
    api_token = issued.get_json()["token"]
    assert api_token.startswith("smt_")

    client = hvac.Client(url=server, token=api_token)
    assert client.is_authenticated()
    looked_up = client.lookup_token()["data"]
    assert looked_up["display_name"] == account["principal"]
    assert api_token not in json.dumps(looked_up)
    assert not hvac.Client(url=server, token="smt_" + "y" * 43).is_authenticated()
    eso = kv_as(server, api_token)
    eso.create_or_update_secret(path="project/p-42/_/ESO", secret={"k": "v"})
    assert eso.read_secret_version(path="project/p-42/_/ESO", raise_on_deleted_version=True)

    bearer = app.test_client().get(
        "/v1/secret/data/project/p-42/_/ESO", headers={"Authorization": f"Bearer {api_token}"}
    )
    assert bearer.status_code == 200 and bearer.get_json()["data"]["data"] == {"k": "v"}

    for token in ("not-a-token", "smt_" + "x" * 43):
        with pytest.raises(hvac.exceptions.Forbidden):
            kv_as(server, token).read_secret_version(
                path="project/p-42/_/ESO", raise_on_deleted_version=True
            )
    anonymous = app.test_client().get("/v1/secret/data/project/p-42/_/ESO")
    assert (anonymous.status_code, anonymous.get_json()) == (403, {"errors": ["permission denied"]})
    refused = [e for e in audit_events(api) if e["action"] == "auth.authenticate"]
    assert refused and all(e["outcome"] != "success" for e in refused)


def test_bad_requests_are_vault_errors_without_values(app: Flask, api: ApiClient) -> None:
    client = app.test_client()
    headers = {"X-Vault-Token": TOKEN}
    canary = "sk-never-echoed-7e57"

    not_object = client.post(
        "/v1/secret/data/project/p-42/_/X", json={"data": canary}, headers=headers
    )
    assert not_object.status_code == 400 and canary not in not_object.get_data(as_text=True)
    nul = client.post(
        "/v1/secret/data/project/p-42/_/X", json={"data": {"k": canary + "\x00"}}, headers=headers
    )
    assert nul.status_code == 400 and canary not in nul.get_data(as_text=True)
    deep = client.post("/v1/secret/data/project/p-42/_/X", data="[" * 100_000, headers=headers)
    assert deep.status_code == 400
    assert list(deep.get_json()) == ["errors"]

    short = client.get("/v1/secret/data/project/p-42/X", headers=headers)
    assert short.status_code == 404
    for long_path in ("project/" + "p" * 129 + "/_/X", "project/p-42/_/" + "X" * 256):
        too_long = client.get(f"/v1/secret/data/{long_path}", headers=headers)
        assert (too_long.status_code, too_long.get_json()) == (404, {"errors": []})
    other_mount = client.get("/v1/kv/data/project/p-42/_/X", headers=headers)
    assert other_mount.status_code == 404 and other_mount.get_json()["errors"]
    bad_version = client.get("/v1/secret/data/project/p-42/_/X?version=x", headers=headers)
    assert bad_version.status_code == 400

    # A stored value nested too deep for a JSON parser is still read, as text.
    api.create(name="DEEP", value="[" * 50_000, scope={"type": "project", "id": "p-42"})
    read = client.get("/v1/secret/data/project/p-42/_/DEEP", headers=headers)
    assert read.status_code == 200 and read.get_json()["data"]["data"] == {"value": "[" * 50_000}


def test_a_served_instance_answers_hvac_and_bao(tmp_path: Path) -> None:
    """`secretctl serve` (gunicorn, which must let Vault's `LIST` method through)."""
    env = serve_env(tmp_path / "data", free_port())
    with running_server(env, tmp_path) as served:
        scope: dict[str, Any] = {
            "type": "organization",
            "id": "acme",
            "parent": {"type": "global", "id": "global"},
        }
        created = requests.post(
            f"{served.addr}/api/v1/scopes",
            json=scope,
            headers={"Authorization": f"Bearer {served.token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        kv = kv_as(served.addr, served.token)
        kv.create_or_update_secret(path="organization/acme/_/SERVED", secret={"k": "served"})
        assert kv.list_secrets(path="organization/acme/_")["data"]["keys"] == ["SERVED"]
        got = bao(
            served.addr, served.token, "kv", "get", "-field=k", "secret/organization/acme/_/SERVED"
        )
        assert (got.returncode, got.stdout) == (0, "served"), got.stderr
