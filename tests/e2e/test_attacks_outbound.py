"""Attacks on what the service sends out (issue #14, High 1), over HTTP on SQLite and PostgreSQL.

Before: a webhook rotator's settings named `url`, `secret_env` and `secret_file` freely, so an
editor had the service sign a value of their choice with the development root token, the IdP's
HS256 key or any readable file, and send it to any URL; the errors echoed file-system facts and
connection results. Now a policy names a rotation target the operator configured, attaching one
takes the admin role at the secret's scope, and errors say only that the target refused or could
not be reached. A real HTTP receiver on loopback stands for the owning system and the attacker.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from dependency_injector import providers
from flask import Flask
from sqlalchemy import update

from adapters.db.tables import rotation_policies
from adapters.webhooks import verify_signature
from entrypoints.config import Settings
from entrypoints.container import reset_use_cases
from tests.e2e.conftest import JWT_KEY, TOKEN, ApiClient, as_user
from tests.e2e.test_secrets_api import assert_error
from tests.fakes import FixedClock
from tests.support.webhooks import WebhookReceiver, webhook_receiver

VALUE = "sk-live-outbound-0a1b2c3d4e5f"
CHOSEN = "attacker-chosen-value-77aa66"
OWNER_KEY = "e2e-owner-system-hmac-key-98765"
# What no answer, audit event or policy may tell a caller: paths, errnos, statuses, hosts.
TELLTALES = (
    "No such file",
    "Is a directory",
    "Permission denied",
    "Errno",
    "shorter than",
    "is not set",
    "HTTP ",
    "ConnectionError",
    "Timeout",
    "refused:",
    "127.0.0.1",
    "/etc/",
    "master.key",
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def port() -> int:
    return closed_port()


@pytest.fixture
def settings(
    settings: Settings, receiver: WebhookReceiver, port: int, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Two rotation targets: `owner` (the receiver, for acme) and `gone` (a closed port)."""
    monkeypatch.setenv("SECRETS_DEV_ROOT_TOKEN", TOKEN)
    monkeypatch.setenv("E2E_OWNER_KEY", OWNER_KEY)
    webhooks = {
        "owner": {
            "url": receiver.url + "/rotate",
            "secret_env": "E2E_OWNER_KEY",
            "scopes": ["organization/acme"],
        },
        "gone": {
            "url": f"http://127.0.0.1:{port}/rotate",
            "secret_env": "E2E_OWNER_KEY",
            "scopes": ["global"],
            "timeout_seconds": 2,
        },
    }
    return replace(settings, rotation={**settings.rotation, "webhooks": webhooks})


@pytest.fixture
def secret(api: ApiClient) -> str:
    """DB_PASSWORD in acme > t-1; ed is an editor and ada an admin of acme."""
    for principal, role in (("user:ed", "editor"), ("user:ada", "admin")):
        body = {
            "principal": principal,
            "role": role,
            "scope": {"type": "organization", "id": "acme"},
        }
        assert api.post("/role-bindings", json=body).status_code == 201
    created = api.create(name="DB_PASSWORD", value=VALUE, scope={"type": "team", "id": "t-1"})
    return str(created["id"])


def put_policy(client: ApiClient, secret_id: str, rotator: str, settings: dict) -> Any:
    body = {"rotator": rotator, "interval_seconds": 86400, "settings": settings}
    return client.request("PUT", f"/secrets/{secret_id}/rotation-policy", json=body)


def assert_tells_nothing(*texts: Any) -> None:
    for text in texts:
        for telltale in TELLTALES:
            assert telltale not in str(text), (telltale, text)


def audit_of(api: ApiClient, secret_id: str) -> list[dict]:
    return api.get(f"/audit/events?secret={secret_id}").get_json()["items"]


def what_audit_says(api: ApiClient, secret_id: str) -> list[tuple[str, str, Any, Any]]:
    """Action, outcome, reason and details of the secret's events (not who or where from)."""
    return [
        (e["action"], e["outcome"], e["reason"], e["details"]) for e in audit_of(api, secret_id)
    ]


# -- settings that name a key, a file or a URL --------------------------------------------------


@pytest.mark.parametrize("rotator", ["webhook", "random"])
@pytest.mark.parametrize(
    ("named", "field"),
    [
        ({"secret_env": "SECRETS_DEV_ROOT_TOKEN"}, "settings.secret_env"),
        ({"secret_env": "TEST_JWT_KEY"}, "settings.secret_env"),  # the IdP's HS256 key
        ({"secret_file": "/etc/shadow"}, "settings.secret_file"),
        ({"secret_file": "{data_dir}/master.key"}, "settings.secret_file"),
        ({"secret_file": "{data_dir}"}, "settings.secret_file"),  # a directory
        ({"secret_file": "{data_dir}/missing"}, "settings.secret_file"),
        ({"target": "owner", "url": "{receiver}/x"}, "settings.url"),
    ],
)
def test_settings_that_name_a_key_a_file_or_a_url_are_refused_even_to_root(
    api: ApiClient,
    secret: str,
    receiver: WebhookReceiver,
    settings: Settings,
    rotator: str,
    named: dict,
    field: str,
) -> None:
    attack = {"url": "{receiver}/x", **named}
    attack = {
        key: value.format(data_dir=settings.data_dir, receiver=receiver.url)
        for key, value in attack.items()
    }

    refused = put_policy(api, secret, rotator, attack)

    error = assert_error(refused, 400, "validation_error")
    first_unknown = f"settings.{min(attack)}"  # `random` names the first key it does not know
    assert error["details"]["field"] == (field if rotator == "webhook" else first_unknown)
    assert_tells_nothing(error)
    assert api.get(f"/secrets/{secret}/rotation-policy").status_code == 404
    assert api.post(f"/secrets/{secret}/rotate", json={"value": CHOSEN}).status_code == 201
    assert receiver.requests == []  # nothing was signed or sent


def test_the_root_token_never_signs_a_value_sent_to_a_url_of_the_callers_choice(
    app: Flask, api: ApiClient, secret: str, receiver: WebhookReceiver
) -> None:
    """The finding, as an editor would try it: refused, and no request reaches the receiver."""
    editor = as_user(app, "ed")
    attack = {"url": receiver.url + "/steal", "secret_env": "SECRETS_DEV_ROOT_TOKEN"}

    for client in (editor, api):
        assert put_policy(client, secret, "webhook", attack).status_code in (400, 403)
    editor.post(f"/secrets/{secret}/rotate", json={"value": CHOSEN})

    assert not any(verify_signature(TOKEN.encode(), r.headers, r.body) for r in receiver.requests)
    assert not any(verify_signature(JWT_KEY.encode(), r.headers, r.body) for r in receiver.requests)
    assert receiver.requests == []


# -- who attaches a rotator that calls out -----------------------------------------------------


def test_an_editor_cannot_attach_a_webhook_rotator_but_an_admin_of_the_scope_can(
    app: Flask, api: ApiClient, secret: str, receiver: WebhookReceiver
) -> None:
    editor, admin = as_user(app, "ed"), as_user(app, "ada")

    refused = put_policy(editor, secret, "webhook", {"target": "no-such-target"})

    error = assert_error(refused, 403, "forbidden")
    assert "admin role" in error["message"]
    assert "owner" not in error["message"] and "gone" not in error["message"]  # no target named
    assert (
        as_user(app, "mallory")
        .request(
            "PUT",
            f"/secrets/{secret}/rotation-policy",
            json={"rotator": "random", "cron": "0 3 * * *"},
        )
        .status_code
        == 404
    )
    assert put_policy(editor, secret, "random", {"length": 40}).status_code == 200

    unknown = assert_error(
        put_policy(admin, secret, "webhook", {"target": "nope"}), 400, "validation_error"
    )
    # An admin is told the configured names (in the details).
    assert unknown["details"] == {"field": "settings.target", "configured": ["gone", "owner"]}
    attached = put_policy(admin, secret, "webhook", {"target": "owner", "length": 30})
    assert attached.status_code == 200, attached.get_json()
    assert attached.get_json()["settings"] == {"target": "owner", "length": 30}

    assert editor.post(f"/secrets/{secret}/rotate", json={}).status_code == 201  # rotate now
    [asked] = receiver.requests
    assert verify_signature(OWNER_KEY.encode(), asked.headers, asked.body)
    assert asked.path == "/rotate" and len(asked.json()["value"]) == 30
    denied = [e for e in audit_of(api, secret) if e["outcome"] == "denied"]
    assert [(e["action"], e["actor"]) for e in denied] == [
        ("secret.rotation_policy.set", "user:ed")
    ]


def test_a_target_serves_only_the_scopes_configured_for_it(api: ApiClient) -> None:
    api.register_scope("organization", "other", ("global", "global"))
    elsewhere = api.create(
        name="DB_PASSWORD", value=VALUE, scope={"type": "organization", "id": "other"}
    )

    refused = put_policy(api, elsewhere["id"], "webhook", {"target": "owner"})

    error = assert_error(refused, 400, "validation_error")
    assert "does not serve scope organization/other" in error["message"]
    assert put_policy(api, elsewhere["id"], "webhook", {"target": "gone"}).status_code == 200


# -- what a failure tells the caller -------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 302, 404])
def test_a_refusal_says_only_that_the_target_refused(
    api: ApiClient,
    secret: str,
    receiver: WebhookReceiver,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    assert put_policy(api, secret, "webhook", {"target": "owner"}).status_code == 200
    receiver.status, receiver.reply = status, b'{"internal": "db-7.corp:5432 says no"}'

    error = assert_error(
        api.post(f"/secrets/{secret}/rotate", json={"value": CHOSEN}), 502, "rotation_failed"
    )

    reason = "the rotation target 'owner' refused the new value"
    assert (error["message"], error["details"]) == (reason, {"reason": reason})
    policy = api.get(f"/secrets/{secret}/rotation-policy").get_json()
    assert (policy["last_status"], policy["last_error"]) == ("failed", reason)
    assert ("secret.rotate", "error", "rotation_failed", {}) in what_audit_says(api, secret)
    assert_tells_nothing(error, policy, what_audit_says(api, secret))
    assert f"HTTP {status}" in caplog.text  # the detail is the operator's, in the log
    assert CHOSEN not in caplog.text and OWNER_KEY not in caplog.text
    assert "db-7.corp" not in caplog.text


def test_an_unreachable_target_is_no_port_scanner(api: ApiClient, secret: str, port: int) -> None:
    assert put_policy(api, secret, "webhook", {"target": "gone"}).status_code == 200

    error = assert_error(api.post(f"/secrets/{secret}/rotate", json={}), 502, "rotation_failed")

    reason = "the rotation target 'gone' could not be reached"
    assert (error["message"], error["details"]) == (reason, {"reason": reason})
    policy = api.get(f"/secrets/{secret}/rotation-policy").get_json()
    assert_tells_nothing(error, policy, what_audit_says(api, secret))
    assert str(port) not in str(error) + str(policy)


# -- policies stored before targets existed ----------------------------------------------------


def test_a_stored_policy_naming_a_url_and_key_is_not_honoured_and_says_so(
    app: Flask, api: ApiClient, secret: str, receiver: WebhookReceiver, engine
) -> None:
    assert put_policy(api, secret, "random", {}).status_code == 200
    legacy = {"url": receiver.url + "/steal", "secret_env": "SECRETS_DEV_ROOT_TOKEN"}
    with engine.begin() as connection:  # as an editor could store it before the fix
        connection.execute(
            update(rotation_policies)
            .where(rotation_policies.c.secret_id == UUID(secret))
            .values(rotator="webhook", settings=legacy)
        )

    refused = as_user(app, "ed").post(f"/secrets/{secret}/rotate", json={"value": CHOSEN})

    error = assert_error(refused, 502, "rotation_failed")
    assert error["message"].startswith("the rotation policy cannot run: ")
    assert "names a configured rotation target" in error["message"]
    assert_tells_nothing(error)
    policy = api.get(f"/secrets/{secret}/rotation-policy").get_json()
    assert (policy["last_status"], policy["last_error"]) == ("failed", error["message"])
    assert api.get(f"/secrets/{secret}/value").get_json()["value"] == VALUE

    container = app.extensions["container"]  # the worker runs it when due: it fails the same way
    later = FixedClock(datetime.now(UTC) + timedelta(days=2))
    with container.clock.override(providers.Object(later)):
        reset_use_cases(container)  # built again on the later clock
        report = container.worker().run_once()
    reset_use_cases(container)
    assert report.rotated == 0
    assert api.get(f"/secrets/{secret}/value").get_json()["value"] == VALUE
    assert receiver.requests == []
