"""Attacks through the Vault-compatible API: guessing tokens in `X-Vault-Token`, reaching into
another organization's tree, and fishing for values in errors and logs."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from flask import Flask

from entrypoints.config import Settings
from entrypoints.http.app import create_app
from tests.e2e.conftest import TOKEN, ApiClient, user_token

CANARY = "pw-vault-attack-canary-0b5e"


def test_guessed_vault_tokens_are_limited_as_bearer_tokens(settings: Settings) -> None:
    app = create_app(replace(settings, auth={"failures_per_minute": 3}))
    try:
        client = app.test_client()
        statuses = [
            client.get(
                "/v1/secret/data/project/p-42/_/DB", headers={"X-Vault-Token": f"smt_guess{n}"}
            )
            for n in range(5)
        ]
        assert [r.status_code for r in statuses] == [403, 403, 403, 429, 429]
        assert statuses[0].get_json() == {"errors": ["permission denied"]}
        assert list(statuses[-1].get_json()) == ["errors"]
        assert int(statuses[-1].headers["Retry-After"]) >= 1
        # One limit per source, shared with the REST API: the other door is closed too.
        rest = client.get("/api/v1/secrets", headers={"Authorization": "Bearer smt_guess9"})
        assert rest.status_code == 429
    finally:
        app.extensions["container"].shutdown_resources()


def test_another_organizations_tree_is_out_of_reach(
    app: Flask, api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.register_scope("organization", "other", ("global", "global"))
    root = {"X-Vault-Token": TOKEN}
    client = app.test_client()
    written = client.post(
        "/v1/secret/data/organization/other/_/DB", json={"data": {"password": CANARY}}, headers=root
    )
    assert written.status_code == 200
    api.post(
        "/role-bindings",
        json={
            "principal": "user:mallory",
            "role": "admin",
            "scope": {"type": "project", "id": "p-42"},
        },
    )
    mallory = {"X-Vault-Token": user_token("mallory")}

    read = client.get("/v1/secret/data/organization/other/_/DB", headers=mallory)
    assert (read.status_code, read.get_json()) == (404, {"errors": []})
    metadata = client.get("/v1/secret/metadata/organization/other/_/DB", headers=mallory)
    assert (metadata.status_code, metadata.get_json()) == (404, {"errors": []})
    for prefix in ("", "organization", "organization/other", "organization/other/_"):
        listed = client.open(f"/v1/secret/metadata/{prefix}", method="LIST", headers=mallory)
        keys = (
            listed.get_json().get("data", {}).get("keys", []) if listed.status_code == 200 else []
        )
        assert "organization/" not in keys and "other/" not in keys and "DB" not in keys
    overwrite = client.post(
        "/v1/secret/data/organization/other/_/DB", json={"data": {"password": "x"}}, headers=mallory
    )
    assert overwrite.status_code == 404
    for operation in ("delete", "destroy", "undelete"):
        changed = client.post(
            f"/v1/secret/{operation}/organization/other/_/DB",
            json={"versions": [1]},
            headers=mallory,
        )
        assert changed.status_code == 404
    assert (
        client.delete("/v1/secret/data/organization/other/_/DB", headers=mallory).status_code == 404
    )

    still = client.get("/v1/secret/data/organization/other/_/DB", headers=root)
    assert still.get_json()["data"]["data"] == {"password": CANARY}
    assert still.get_json()["data"]["metadata"]["version"] == 1
    assert CANARY not in caplog.text  # nor did any log line carry the value
