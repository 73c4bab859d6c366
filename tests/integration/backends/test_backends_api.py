"""External backends through the HTTP API and `secretctl`: listing with live health, refusals
before any write, refused credentials, and adoption of values already in a store."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import hvac
import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from entrypoints.cli import main
from tests.e2e.conftest import TOKEN
from tests.integration.backends.azure_fake import FakeKeyVault
from tests.integration.backends.conftest import ROOT_TOKEN, Service

CAPABILITIES = {
    "local": (1024 * 1024, False, False),
    "vault": (256 * 1024, True, False),
    "aws": (65536, False, False),
    "azure": (18 * 1024, True, True),
    "gcp": (65536, True, False),
}


@pytest.fixture
def external(
    vault_settings: dict[str, Any],
    aws_settings: dict[str, Any],
    azure_settings: dict[str, Any],
    gcp_settings: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """One instance of each external backend, named `<plugin>-api`."""
    return {
        f"{settings['plugin']}-api": settings
        for settings in (vault_settings, aws_settings, azure_settings, gcp_settings)
    }


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], str]]:
    """Serves an app over real HTTP on a free loopback port, for `secretctl`."""
    servers = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def secretctl(addr: str, *args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--addr", addr, "--token", TOKEN])


def test_backends_are_listed_with_plugin_capabilities_and_live_health(
    service: Callable[..., Service],
    external: dict[str, dict[str, Any]],
    serve: Callable[[Flask], str],
) -> None:
    svc = service(external)

    items = svc.api.get("/backends").get_json()["items"]

    assert [item["name"] for item in items] == ["local", *external]
    for item in items:
        limit, versioning, soft_delete = CAPABILITIES[item["plugin"]]
        assert item["capabilities"] == {
            "max_value_bytes": limit,
            "native_versioning": versioning,
            "native_soft_delete": soft_delete,
        }
        assert item["health"]["ok"] and item["health"]["latency_ms"] > 0, item
        assert item["default"] is (item["name"] == "local")
    ready = svc.api.client.get("/readyz")
    assert ready.status_code == 200
    assert {f"backend:{name}" for name in external} < set(ready.get_json()["checks"])

    listed = secretctl(serve(svc.app), "backends", "list")
    assert listed.exit_code == 0, listed.output
    assert "local (default)\tlocal\tok" in listed.output
    assert "azure-api\tazure\tok" in listed.output and "up to 18432 bytes" in listed.output


def test_a_value_over_the_backend_limit_is_refused_before_any_write(
    service: Callable[..., Service], azure_settings: dict[str, Any], key_vault: FakeKeyVault
) -> None:
    svc = service({"azure-api": azure_settings})
    writes = len(key_vault.writes())

    refused = svc.api.post(
        "/secrets", json={"name": "BIG", "value": "x" * (18 * 1024 + 1), "backend": "azure-api"}
    )

    assert refused.status_code == 413
    error = refused.get_json()["error"]
    assert error["code"] == "value_too_large" and error["details"]["limit"] == 18 * 1024
    assert "18432 bytes" in error["message"] and "'azure-api'" in error["message"]
    assert len(key_vault.writes()) == writes
    assert svc.secret_count() == 0


@pytest.mark.parametrize("plugin", ["vault", "azure"])
def test_refused_credentials_are_502_naming_the_instance(
    plugin: str,
    service: Callable[..., Service],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = request.getfixturevalue(f"{plugin}_settings")
    variable = settings.get("token_env") or settings["client_secret_env"]
    monkeypatch.setenv(variable, "not-the-right-credential")
    svc = service({"refused": settings})

    created = svc.api.post("/secrets", json={"name": "X", "value": "v", "backend": "refused"})

    assert created.status_code == 502, created.get_json()
    error = created.get_json()["error"]
    assert error["code"] == "backend_auth_failed" and error["details"] == {"backend": "refused"}
    assert "not-the-right-credential" not in created.get_data(as_text=True)
    assert svc.secret_count() == 0
    [health] = [
        item["health"]
        for item in svc.api.get("/backends").get_json()["items"]
        if item["name"] == "refused"
    ]
    assert not health["ok"] and "refused the service's credentials" in health["detail"]


def test_adoption_over_the_cli_and_http(
    service: Callable[..., Service],
    vault_settings: dict[str, Any],
    openbao_url: str,
    serve: Callable[[Flask], str],
) -> None:
    kv = hvac.Client(url=openbao_url, token=ROOT_TOKEN).secrets.kv.v2
    prefix = f"apps-{uuid.uuid4().hex[:8]}/"
    database = {"username": "app", "password": "db-pw-5e1a"}
    kv.create_or_update_secret(path=f"{prefix}db", secret=database, mount_point="secret")
    kv.create_or_update_secret(
        path=f"{prefix}api/key", secret={"value": "key-19ab"}, mount_point="secret"
    )
    svc = service({"vault-api": vault_settings})
    addr = serve(svc.app)

    adopted = secretctl(
        addr,
        "backends",
        "adopt",
        "vault-api",
        "--prefix",
        prefix,
        "--scope",
        "organization:acme",
        "--parent",
        "global",
    )

    assert adopted.exit_code == 0, adopted.output
    assert f"adopted\t{prefix}api/key -> api_key" in adopted.output
    assert f"adopted\t{prefix}db -> db" in adopted.output
    by_path = "/scopes/organization/acme/secrets"
    assert json.loads(svc.api.get(f"{by_path}/db/value").get_json()["value"]) == database
    assert svc.api.get(f"{by_path}/api_key/value").get_json()["value"] == "key-19ab"

    again = svc.api.post(
        "/backends/vault-api/adopt",
        json={"prefix": prefix, "scope": {"type": "organization", "id": "acme"}},
    ).get_json()
    assert (again["adopted"], again["skipped"], again["failed"]) == (0, 2, 0)
    assert {item["reason"] for item in again["items"]} == {"adopted already"}

    secret = svc.api.get(f"{by_path}/db").get_json()
    assert secret["tags"] == {"adopted-from": "vault-api"} and secret["backend"] == "vault-api"
    assert (
        svc.api.post(f"/secrets/{secret['id']}/versions", json={"value": "new"}).status_code == 201
    )
    assert svc.api.get(f"/secrets/{secret['id']}/value?version=2").get_json()["value"] == "new"
    assert (
        json.loads(svc.api.get(f"/secrets/{secret['id']}/value?version=1").get_json()["value"])
        == database
    )

    svc.api.delete(f"/secrets/{secret['id']}")
    assert svc.api.post(f"/secrets/{secret['id']}/purge").status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):  # the adopted value is destroyed too
        kv.read_secret_version(
            path=f"{prefix}db", version=1, mount_point="secret", raise_on_deleted_version=True
        )
