"""The fake Key Vault follows the documented behaviour the backend relies on, checked with the
real SDK: versions, disabled versions, soft delete, the reserved name, recover, purge, and purge
protection (the backend's purge then leaves the secret deleted, not failed)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from core.domain.errors import NotFound
from core.domain.values import SecretValue, VersionKey
from tests.integration.backends.azure_fake import FakeKeyVault
from tests.integration.backends.conftest import build_backend


@pytest.fixture
def backend(azure_settings: dict[str, Any]) -> Any:
    backend = build_backend("azure-fake", azure_settings)
    yield backend
    backend.close()


def test_the_fake_keeps_key_vaults_rules(backend: Any) -> None:
    client = backend._client
    name = f"fake-rules-{uuid.uuid4().hex[:8]}"
    first = client.set_secret(name, "one")
    second = client.set_secret(name, "two")
    assert (
        len(first.properties.version) == 32
        and first.properties.version != second.properties.version
    )
    assert client.get_secret(name).value == "two"
    assert client.get_secret(name, first.properties.version).value == "one"

    client.update_secret_properties(name, first.properties.version, enabled=False)
    with pytest.raises(HttpResponseError) as disabled:
        client.get_secret(name, first.properties.version)
    assert disabled.value.status_code == 403
    with pytest.raises(HttpResponseError) as bad_name:
        client.set_secret("not_a_valid_name", "x")
    assert bad_name.value.status_code == 400

    client.begin_delete_secret(name).wait()
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    with pytest.raises(ResourceExistsError):  # the name stays reserved while deleted
        client.set_secret(name, "three")
    client.begin_recover_deleted_secret(name).wait()
    assert client.get_secret(name).value == "two"

    client.begin_delete_secret(name).wait()
    client.purge_deleted_secret(name)
    client.set_secret(name, "after the purge")


def test_purge_under_purge_protection_leaves_the_secret_deleted(
    backend: Any, key_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = VersionKey(uuid.uuid4(), 1)
    locator = backend.put(key, SecretValue(b"protected"))
    monkeypatch.setattr(key_vault, "purge_protection", True)

    backend.purge(key.secret_id)

    with pytest.raises(NotFound):
        backend.get(key, locator)
    assert key_vault.secrets[f"secret-management-{key.secret_id}"].deleted_at is not None
