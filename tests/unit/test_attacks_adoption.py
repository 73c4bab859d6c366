"""Attacks on where the service's calls go (issue #14, High 1, the review of every outbound call
a caller can steer): an adoption prefix is a path inside the Vault backend's KV mount, and `..`
in it would have walked the service's Vault token out of that mount (`requests` resolves dot
segments: `/v1/secret/metadata/../../sys/policy` is `/v1/sys/policy`)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from core.domain.errors import InvalidInput
from plugins.external import ExternalNames
from plugins.vault_backend import VaultBackend


class RecordingKv:
    """The part of hvac's KV v2 client adoption uses: records each path asked, holds nothing."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def list_secrets(self, path: str, mount_point: str) -> dict[str, Any]:
        self.listed.append(path)
        return {"data": {"keys": []}}


class RecordingClient:
    def __init__(self) -> None:
        self.kv = RecordingKv()
        self.secrets = type("Secrets", (), {"kv": type("Kv", (), {"v2": self.kv})()})()


def vault(client: RecordingClient) -> VaultBackend:
    return VaultBackend("vault", client, lambda client: None, "secret", ExternalNames("sm/"), 100)


def test_dot_segments_would_leave_the_mount() -> None:
    """Why the prefix is checked: the URL hvac builds for a `..` path is another endpoint."""
    url = "http://127.0.0.1:8200/v1/secret/metadata/../../sys/policy"
    assert requests.Request("LIST", url).prepare().url == "http://127.0.0.1:8200/v1/sys/policy"


@pytest.mark.parametrize(
    "prefix",
    [
        "../../sys/policy/",
        "apps/../../../sys/",
        "..",
        "apps/./db",
        "apps//db",
        "/apps/",
        "%2e%2e/%2e%2e/sys/",
        "apps/db?list=true",
        "apps/db#x",
    ],
)
def test_an_adoption_prefix_cannot_walk_out_of_the_kv_mount(prefix: str) -> None:
    client = RecordingClient()

    with pytest.raises(InvalidInput) as refused:
        vault(client).list_external(prefix)

    assert refused.value.details == {"field": "prefix"}
    assert client.kv.listed == []  # nothing was asked of Vault


@pytest.mark.parametrize(
    ("prefix", "folder"),
    [("", ""), ("legacy-", ""), ("apps/", "apps"), ("apps/db.v2/pass", "apps/db.v2")],
)
def test_ordinary_prefixes_list_their_folder(prefix: str, folder: str) -> None:
    client = RecordingClient()
    assert vault(client).list_external(prefix) == []
    assert client.kv.listed == [folder]
