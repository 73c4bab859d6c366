"""What only the Vault/OpenBao backend does: AppRole logins and token files, both renewed when
Vault refuses the token, and KV keys that keep every version instead of the mount's ten."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import hvac

from core.domain.values import SecretValue, VersionKey
from tests.integration.backends.conftest import ROOT_TOKEN, build_backend

POLICY = """
path "secret/data/secret-management/*" { capabilities = ["create", "update", "read"] }
path "secret/metadata/secret-management/*" {
  capabilities = ["create", "update", "read", "delete", "list"]
}
path "secret/destroy/secret-management/*" { capabilities = ["update"] }
"""


def approle(openbao_url: str, tmp_path: Path) -> tuple[str, Path]:
    """An AppRole with the backend's policy: its role id, and a file holding a secret id."""
    root = hvac.Client(url=openbao_url, token=ROOT_TOKEN)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy("secret-management", POLICY)
    role = f"service-{uuid.uuid4().hex[:8]}"
    root.auth.approle.create_or_update_approle(role, token_policies=["secret-management"])
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id)
    return role_id, secret_file


def test_approle_logs_in_and_logs_in_again_when_its_token_is_revoked(
    openbao_url: str, tmp_path: Path
) -> None:
    role_id, secret_file = approle(openbao_url, tmp_path)
    backend = build_backend(
        "vault-approle",
        {
            "plugin": "vault",
            "url": openbao_url,
            "auth": "approle",
            "role_id": role_id,
            "secret_id_file": str(secret_file),
        },
    )
    key = VersionKey(uuid.uuid4(), 1)
    locator = backend.put(key, SecretValue(b"approle value"))
    token = backend._client.token
    hvac.Client(url=openbao_url, token=ROOT_TOKEN).auth.token.revoke(token)

    assert backend.get(key, locator).reveal() == b"approle value"
    assert backend._client.token != token
    assert backend.health().ok
    backend.close()


def test_a_token_file_is_read_again_when_vault_refuses_the_token(
    openbao_url: str, tmp_path: Path
) -> None:
    root = hvac.Client(url=openbao_url, token=ROOT_TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(root.auth.token.create(policies=["root"])["auth"]["client_token"])
    backend = build_backend(
        "vault-token-file", {"plugin": "vault", "url": openbao_url, "token_file": str(token_file)}
    )
    key = VersionKey(uuid.uuid4(), 1)
    locator = backend.put(key, SecretValue(b"token file value"))

    root.auth.token.revoke(token_file.read_text())
    token_file.write_text(root.auth.token.create(policies=["root"])["auth"]["client_token"])

    assert backend.get(key, locator).reveal() == b"token file value"
    backend.close()


def test_every_version_stays_readable_past_the_mounts_ten(vault_settings: dict[str, Any]) -> None:
    backend = build_backend("vault-many", vault_settings)
    secret_id = uuid.uuid4()
    locators = [
        backend.put(VersionKey(secret_id, version), SecretValue(f"v{version}".encode()))
        for version in range(1, 13)
    ]

    for version, locator in enumerate(locators, start=1):
        assert (
            backend.get(VersionKey(secret_id, version), locator).reveal() == f"v{version}".encode()
        )
    backend.close()
