"""Lifecycle over HTTP on SQLite and PostgreSQL: version states, rollback, rotation (a webhook
rotator talking to a real receiver), policies, validity, events delivered by the worker to a
signed webhook, restore and purge — and no value anywhere it should not be."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from click.testing import CliRunner
from dependency_injector import providers
from flask import Flask
from sqlalchemy import func, select

from adapters.db.tables import encrypted_values, metadata, outbox, secrets, versions
from adapters.webhooks import verify_signature
from entrypoints.cli import main
from entrypoints.config import Settings
from entrypoints.container import reset_use_cases
from tests.e2e.conftest import ApiClient
from tests.e2e.test_secrets_api import assert_error
from tests.fakes import FixedClock
from tests.support.webhooks import WebhookReceiver, webhook_receiver

VALUE = "sk-live-lifecycle-0a1b2c3d4e5f"
VALUE_2 = "sk-live-lifecycle-second-6a7b8c"
VALUE_3 = "sk-live-lifecycle-third-9d8e7f"
HOOK_KEY = "e2e-webhook-hmac-key-0123456789"
OWNER_KEY = "e2e-owner-system-hmac-key-98765"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def settings(
    settings: Settings, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The e2e settings, with one event subscriber, the receiver's `/events`, and one rotation
    target, `owner`: the receiver's `/rotate`."""
    monkeypatch.setenv("E2E_HOOK_KEY", HOOK_KEY)
    monkeypatch.setenv("E2E_OWNER_KEY", OWNER_KEY)
    webhooks = {"ops": {"url": receiver.url + "/events", "secret_env": "E2E_HOOK_KEY"}}
    owner = {"url": receiver.url + "/rotate", "secret_env": "E2E_OWNER_KEY", "scopes": ["global"]}
    return replace(
        settings,
        events={**settings.events, "webhooks": webhooks},
        rotation={**settings.rotation, "webhooks": {"owner": owner}},
    )


def run_worker(app: Flask, at: datetime | None = None):
    container = app.extensions["container"]
    if at is None:
        return container.worker().run_once()
    try:
        with container.clock.override(providers.Object(FixedClock(at))):
            reset_use_cases(container)  # built again on the fixed clock
            return container.worker().run_once()
    finally:
        reset_use_cases(container)


def etag(response) -> str:
    return response.headers["ETag"]


def value_of(api: ApiClient, secret_id: str, version: int | None = None):
    suffix = f"?version={version}" if version else ""
    return api.get(f"/secrets/{secret_id}/value{suffix}")


# -- versions -------------------------------------------------------------------------------


def test_version_states_and_rollback_with_if_match(api: ApiClient) -> None:
    secret = api.create(name="DB_PASSWORD", value=VALUE)
    sid = secret["id"]
    second = api.post(f"/secrets/{sid}/versions", json={"value": VALUE_2})
    assert etag(second) == '"rev-2"'

    stale = api.post(f"/secrets/{sid}/versions/1/disable", headers={"If-Match": '"rev-1"'})
    assert assert_error(stale, 412, "precondition_failed")["details"] == {"revision": 2}
    disabled = api.post(f"/secrets/{sid}/versions/1/disable", headers={"If-Match": '"rev-2"'})
    assert disabled.status_code == 200 and etag(disabled) == '"rev-3"'
    assert (disabled.get_json()["state"], disabled.get_json()["stage"]) == ("disabled", "previous")
    assert_error(value_of(api, sid, 1), 409, "version_unavailable")
    assert api.post(f"/secrets/{sid}/versions/1/enable").get_json()["state"] == "enabled"
    assert value_of(api, sid, 1).get_json()["value"] == VALUE

    current = assert_error(api.post(f"/secrets/{sid}/versions/2/destroy"), 409, "conflict")
    assert current["details"] == {"version": 2, "stage": "current"}
    assert api.post(f"/secrets/{sid}/versions/1/destroy").get_json()["state"] == "destroyed"
    assert_error(value_of(api, sid, 1), 409, "version_unavailable")
    assert_error(
        api.post(f"/secrets/{sid}/rollback", json={"version": 1}), 409, "version_unavailable"
    )
    assert_error(api.post(f"/secrets/{sid}/versions/9/enable"), 404, "not_found")

    api.post(f"/secrets/{sid}/versions", json={"value": VALUE_3})
    rolled = api.post(f"/secrets/{sid}/rollback", json={"version": 2})
    assert rolled.status_code == 201 and rolled.get_json()["current_version"] == 4
    assert etag(rolled) == f'"rev-{rolled.get_json()["revision"]}"'
    assert value_of(api, sid).get_json()["value"] == VALUE_2
    history = api.get(f"/secrets/{sid}/versions").get_json()["items"]
    assert [(v["version"], v["state"], v["stage"]) for v in history] == [
        (1, "destroyed", None),
        (2, "enabled", None),
        (3, "enabled", "previous"),
        (4, "enabled", "current"),
    ]
    assert_error(api.post(f"/secrets/{sid}/rollback", json={"version": 0}), 400, "validation_error")


def test_a_value_outside_its_validity_is_not_served_but_its_metadata_is(api: ApiClient) -> None:
    secret = api.create(name="WINDOWED", value=VALUE)
    sid = secret["id"]
    starts = "2999-01-01T00:00:00+00:00"
    written = api.post(f"/secrets/{sid}/versions", json={"value": VALUE_2, "not_before": starts})
    assert written.status_code == 201

    error = assert_error(value_of(api, sid), 409, "secret_not_yet_valid")
    assert error["details"] == {"not_before": starts} and VALUE_2 not in str(error)
    assert value_of(api, sid, 1).get_json()["value"] == VALUE
    assert api.get(f"/secrets/{sid}/versions/2").get_json()["not_before"].startswith("2999")

    api.post(
        f"/secrets/{sid}/versions", json={"value": VALUE_3, "expires_at": "2001-01-01T00:00:00Z"}
    )
    error = assert_error(value_of(api, sid), 410, "secret_expired")
    assert error["details"]["expires_at"].startswith("2001-01-01")
    assert api.get(f"/secrets/{sid}").status_code == 200


# -- rotation -------------------------------------------------------------------------------


def test_rotation_and_its_policy_over_http(api: ApiClient) -> None:
    secret = api.create(name="API_TOKEN", value=VALUE)
    sid = secret["id"]

    rotated = api.post(
        f"/secrets/{sid}/rotate", json={"value": VALUE_2}, headers={"If-Match": '"rev-1"'}
    )
    assert rotated.status_code == 201, rotated.get_json()
    body = rotated.get_json()
    assert (body["current_version"], body["previous_version"], body["pending_version"]) == (
        2,
        1,
        None,
    )
    previous = api.get(f"/secrets/{sid}/versions/1").get_json()
    assert previous["stage"] == "previous" and previous["disable_at"]
    assert value_of(api, sid, 1).get_json()["value"] == VALUE  # within the grace period
    assert_error(api.post(f"/secrets/{sid}/rotate", json={}), 400, "validation_error")
    assert_error(api.get(f"/secrets/{sid}/rotation-policy"), 404, "not_found")

    policy = api.request(
        "PUT",
        f"/secrets/{sid}/rotation-policy",
        json={"rotator": "random", "settings": {"length": 40}, "interval_seconds": 3600},
        headers={"If-Match": etag(rotated)},
    )
    assert policy.status_code == 200, policy.get_json()
    assert policy.get_json()["next_run_at"] and policy.get_json()["grace_seconds"] == 86400
    assert api.get(f"/secrets/{sid}/rotation-policy").get_json()["settings"] == {"length": 40}

    generated = api.post(f"/secrets/{sid}/rotate", json={})
    assert generated.status_code == 201 and generated.get_json()["current_version"] == 3
    assert len(value_of(api, sid).get_json()["value"]) == 40
    assert api.get(f"/secrets/{sid}/rotation-policy").get_json()["last_status"] == "success"

    bad = api.request(
        "PUT", f"/secrets/{sid}/rotation-policy", json={"rotator": "random", "cron": "every day"}
    )
    assert assert_error(bad, 400, "validation_error")["details"] == {"field": "cron"}
    inline = api.request(
        "PUT",
        f"/secrets/{sid}/rotation-policy",
        json={"rotator": "random", "interval_seconds": 60, "settings": {"secret": VALUE}},
    )
    assert assert_error(inline, 400, "validation_error")["details"] == {"field": "settings.secret"}
    assert VALUE not in inline.get_data(as_text=True)
    deleted = api.delete(f"/secrets/{sid}/rotation-policy")
    assert deleted.status_code == 204 and deleted.headers["ETag"]
    assert_error(api.get(f"/secrets/{sid}/rotation-policy"), 404, "not_found")


def test_a_rotated_value_must_be_of_the_secrets_type(api: ApiClient) -> None:
    secret = api.create(
        name="DB_LOGIN", type="username_password", value='{"username": "app", "password": "pw-1"}'
    )
    sid = secret["id"]
    refused = api.post(f"/secrets/{sid}/rotate", json={"value": "not json"})
    assert_error(refused, 422, "invalid_secret_value")
    assert [v["version"] for v in api.get(f"/secrets/{sid}/versions").get_json()["items"]] == [1]
    good = '{"username": "app", "password": "pw-2"}'
    assert api.post(f"/secrets/{sid}/rotate", json={"value": good}).status_code == 201


def test_a_webhook_rotation_asks_the_owner_and_a_refusal_keeps_the_current_value(
    api: ApiClient, app: Flask, receiver: WebhookReceiver, engine
) -> None:
    secret = api.create(name="DB_PASSWORD", value=VALUE)
    sid = secret["id"]
    policy = {
        "rotator": "webhook",
        "interval_seconds": 86400,
        "settings": {"target": "owner", "length": 30},
    }
    assert api.request("PUT", f"/secrets/{sid}/rotation-policy", json=policy).status_code == 200

    assert api.post(f"/secrets/{sid}/rotate", json={}).status_code == 201
    [asked] = [r for r in receiver.requests if r.path == "/rotate"]
    assert verify_signature(OWNER_KEY.encode(), asked.headers, asked.body)
    accepted = asked.json()["value"]
    assert value_of(api, sid).get_json()["value"] == accepted and len(accepted) == 30

    receiver.status = 500
    refused = api.post(f"/secrets/{sid}/rotate", json={})
    error = assert_error(refused, 502, "rotation_failed")
    assert error["details"] == {"reason": "the rotation target 'owner' refused the new value"}
    assert value_of(api, sid).get_json()["value"] == accepted  # the old value stays current
    states = [
        (v["version"], v["state"], v["stage"])
        for v in api.get(f"/secrets/{sid}/versions").get_json()["items"]
    ]
    assert states == [(1, "enabled", "previous"), (2, "enabled", "current"), (3, "destroyed", None)]
    assert api.get(f"/secrets/{sid}/rotation-policy").get_json()["last_status"] == "failed"

    receiver.status = 200
    run_worker(app)
    failures = [b for b in receiver.bodies("/events") if b["type"] == "secret.rotation_failed"]
    assert [(f["secret"]["id"], f["version"], f["reason"]) for f in failures] == [
        (sid, 3, "the rotation target 'owner' refused the new value")
    ]
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(func.count())
                .select_from(encrypted_values)
                .where(encrypted_values.c.secret_id == UUID(sid), encrypted_values.c.version == 3)
            ).scalar_one()
            == 0
        )  # the refused value was destroyed


# -- events, restore, purge -----------------------------------------------------------------


def test_events_are_delivered_signed_and_never_carry_a_value(
    api: ApiClient, app: Flask, receiver: WebhookReceiver, engine, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = api.create(name="STRIPE_KEY", value=VALUE, scope={"type": "project", "id": "p-42"})
    sid = secret["id"]
    api.post(f"/secrets/{sid}/versions", json={"value": VALUE_2})
    api.post(f"/secrets/{sid}/rotate", json={"value": VALUE_3})
    api.delete(f"/secrets/{sid}")
    api.post(f"/secrets/{sid}/restore")
    api.delete(f"/secrets/{sid}")
    api.post(f"/secrets/{sid}/purge")

    report = run_worker(app)

    assert report.delivered == 7 and report.failed == 0
    events = [r for r in receiver.requests if r.path == "/events"]
    assert [e.json()["type"] for e in events] == [
        "secret.created",
        "secret.updated",
        "secret.rotated",
        "secret.deleted",
        "secret.restored",
        "secret.deleted",
        "secret.purged",
    ]
    assert all(verify_signature(HOOK_KEY.encode(), e.headers, e.body) for e in events)
    first = events[0].json()
    assert first["secret"] == {
        "id": sid,
        "scope": "project/p-42",
        "name": "STRIPE_KEY",
        "environment": None,
    }
    assert events[0].headers["X-Secrets-Event-Id"] == first["id"]
    assert run_worker(app).delivered == 0  # each delivered once
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.delivered_at.is_(None))
            ).scalar_one()
            == 0
        )
        every_row = repr(
            [list(connection.execute(select(table))) for table in metadata.sorted_tables]
        )
    for text in [*(e.body.decode() for e in events), caplog.text, every_row]:
        for value in (VALUE, VALUE_2, VALUE_3):
            assert value not in text


def test_restore_brings_back_every_version_and_purge_leaves_no_value(
    api: ApiClient, engine
) -> None:
    secret = api.create(name="KEPT", value=VALUE)
    sid = secret["id"]
    api.post(f"/secrets/{sid}/versions", json={"value": VALUE_2})
    api.post(f"/secrets/{sid}/rotate", json={"value": VALUE_3})

    deleted = api.delete(f"/secrets/{sid}")
    assert_error(value_of(api, sid), 404, "not_found")
    assert_error(
        api.post(f"/secrets/{sid}/restore", headers={"If-Match": '"rev-2"'}),
        412,
        "precondition_failed",
    )
    restored = api.post(f"/secrets/{sid}/restore", headers={"If-Match": etag(deleted)})
    assert restored.status_code == 200
    assert [value_of(api, sid, n).get_json()["value"] for n in (1, 2, 3)] == [
        VALUE,
        VALUE_2,
        VALUE_3,
    ]
    assert [v["stage"] for v in api.get(f"/secrets/{sid}/versions").get_json()["items"]] == [
        None,
        "previous",
        "current",
    ]

    deleted = api.delete(f"/secrets/{sid}")
    stale = api.post(f"/secrets/{sid}/purge", headers={"If-Match": '"rev-1"'})
    assert_error(stale, 412, "precondition_failed")
    purged = api.post(f"/secrets/{sid}/purge", headers={"If-Match": etag(deleted)})
    assert purged.status_code == 204
    with engine.connect() as connection:
        for table in (secrets, versions, encrypted_values):
            column = table.c.id if table is secrets else table.c.secret_id
            count = select(func.count()).select_from(table).where(column == UUID(sid))
            assert connection.execute(count).scalar_one() == 0, table.name


def test_the_worker_purges_what_outlived_its_retention_window(api: ApiClient, app: Flask) -> None:
    secret = api.create(name="TEMPORARY", value=VALUE)
    sid = secret["id"]
    deleted = api.delete(f"/secrets/{sid}").get_json()
    purge_after = datetime.fromisoformat(deleted["purge_after"])

    assert run_worker(app, purge_after - timedelta(seconds=1)).purged == 0
    assert api.get(f"/secrets/{sid}?include_deleted=true").status_code == 200
    assert run_worker(app, purge_after).purged == 1
    assert_error(api.get(f"/secrets/{sid}?include_deleted=true"), 404, "not_found")


def test_the_openapi_document_declares_the_lifecycle_and_if_match_on_every_write(app) -> None:
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    writes = [
        ("/api/v1/secrets/{secret_id}/versions/{version}/disable", "post"),
        ("/api/v1/secrets/{secret_id}/versions/{version}/enable", "post"),
        ("/api/v1/secrets/{secret_id}/versions/{version}/destroy", "post"),
        ("/api/v1/secrets/{secret_id}/rollback", "post"),
        ("/api/v1/secrets/{secret_id}/rotate", "post"),
        ("/api/v1/secrets/{secret_id}/rotation-policy", "put"),
        ("/api/v1/secrets/{secret_id}/rotation-policy", "delete"),
        ("/api/v1/secrets/{secret_id}/versions", "post"),
        ("/api/v1/secrets/{secret_id}", "patch"),
        ("/api/v1/secrets/{secret_id}", "delete"),
        ("/api/v1/secrets/{secret_id}/restore", "post"),
        ("/api/v1/secrets/{secret_id}/purge", "post"),
    ]
    for path, method in writes:
        operation = paths[path][method]
        assert any(p["name"] == "If-Match" for p in operation["parameters"]), (path, method)
        assert "412" in operation["responses"], (path, method)
    assert "502" in paths["/api/v1/secrets/{secret_id}/rotate"]["post"]["responses"]
    assert "get" in paths["/api/v1/secrets/{secret_id}/rotation-policy"]


def test_secretctl_worker_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SECRETS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SECRETS_KEYS__PROVIDER", "file")
    monkeypatch.setenv("SECRETS_KEYS__PATH", settings.keys["path"])
    assert CliRunner().invoke(main, ["init"]).exit_code == 0  # a worker makes no key of its own

    result = CliRunner().invoke(main, ["worker", "--once"])

    assert result.exit_code == 0, result.output
    assert "rotated 0" in result.output and "purged 0" in result.output
