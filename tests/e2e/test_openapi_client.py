"""A Python client generated from the served OpenAPI document, as a platform team would make one
(openapi-python-client), builds without a warning, imports, and works against the live app
(over its WSGI interface, through httpx): it creates a scope and a secret with the typed
models, reads the value back by id and by path, writes a version, lists, reads a scope's
parent, and reads an error answer as the error body (issue #16)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.e2e.conftest import TOKEN, ApiClient

# Not the name of the title (`secret_management_client`): that is the real client in clients/python.
PACKAGE = "generated_secret_management_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
def client_package(api: ApiClient, tmp_path: Path) -> Iterator[ModuleType]:
    """The client generated from `/api/v1/openapi.json` into a temporary directory, imported."""
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(api.client.get("/api/v1/openapi.json").get_json()))
    config = tmp_path / "generator.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")  # no formatter run
    command = [GENERATOR, "generate", "--path", document, "--output-path", tmp_path / PACKAGE]
    generated = subprocess.run(
        [*command, "--meta", "none", "--config", config],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "Warning" not in output and "Unable" not in output, output  # nothing left out
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_works_against_the_service(
    app: Flask, client_package: ModuleType
) -> None:
    models = module(client_package, "models")
    secrets = "api.secrets."
    transport = {"transport": httpx.WSGITransport(app=app)}
    client = client_package.AuthenticatedClient(
        base_url="http://service.test", token=TOKEN, httpx_args=transport
    )
    anonymous = client_package.Client(base_url="http://service.test", httpx_args=transport)

    health = module(client_package, "api.health.get_health").sync(client=anonymous)
    assert health.status == "ok"
    assert module(client_package, "api.access.whoami").sync(client=client).principal == "root"

    scope = module(client_package, "api.access.create_scope").sync(
        client=client,
        body=models.ScopeCreate(
            type_=models.ScopeCreateType.PROJECT,
            id="p-7",
            parent=models.ScopeRef(type_=models.ScopeRefType.TEAM, id="t-1"),
        ),
    )
    assert (scope.type_, scope.id) == (models.ScopeItemType.PROJECT, "p-7")
    assert (scope.parent.type_.value, scope.parent.id) == ("team", "t-1")

    created = module(client_package, secrets + "create_secret").sync(
        client=client,
        body=models.SecretCreate(
            name="OPENAI_API_KEY",
            value="sk-generated-0001",
            scope=models.Scope(type_=models.ScopeType.PROJECT, id="p-7"),
            environment="production",
            consumer=models.SecretCreateConsumer.LLM_MODEL,
        ),
    )
    assert isinstance(created, models.Secret), created
    assert created.reference == "secret://project/p-7/OPENAI_API_KEY?env=production"

    by_id = module(client_package, secrets + "get_secret_value").sync(
        secret_id=created.id, client=client
    )
    assert (by_id.value, by_id.version) == ("sk-generated-0001", 1)
    written = module(client_package, secrets + "write_value").sync(
        secret_id=created.id,
        client=client,
        body=models.SecretVersionCreate(value="sk-generated-0002"),
    )
    assert written.current_version == 2
    by_path = module(client_package, secrets + "get_secret_value_by_path").sync(
        scope_type=models.GetSecretValueByPathScopeType.PROJECT,
        scope_id="p-7",
        name="OPENAI_API_KEY",
        environment="production",
        client=client,
    )
    assert (by_path.value, by_path.version) == ("sk-generated-0002", 2)

    listed = module(client_package, secrets + "list_secrets").sync(
        client=client, scope_type=models.ListSecretsScopeType.PROJECT, scope_id="p-7"
    )
    assert (listed.total, [secret.name for secret in listed.items]) == (1, ["OPENAI_API_KEY"])
    versions = module(client_package, secrets + "list_versions").sync(
        secret_id=created.id, client=client
    )
    assert [version.version for version in versions.items] == [1, 2]
    scopes = module(client_package, "api.access.list_scopes").sync(
        client=client, type_=models.ListScopesType.PROJECT
    )
    parents = {item.id: (item.parent.type_.value, item.parent.id) for item in scopes.items}
    assert parents == {"p-42": ("team", "t-1"), "p-7": ("team", "t-1")}

    missing = module(client_package, secrets + "get_secret").sync(
        secret_id=uuid.uuid4(), client=client
    )
    assert isinstance(missing, models.Error)
    assert missing.error.code == "not_found"
    refused = module(client_package, secrets + "create_secret").sync_detailed(
        client=client, body=models.SecretCreate(name="bad name", value="v")
    )
    assert refused.status_code == 400 and refused.parsed.error.code == "validation_error"
