"""Signed webhooks against a real HTTP receiver on loopback: the configured targets, the event
publisher and the webhook rotator, their signatures, their failures, and that errors name no
URL, status or path and echo no answer."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookPublisher,
    WebhookTarget,
    configured_targets,
    read_key,
    sign,
    url_problem,
    verify_signature,
)
from core.domain.errors import ConfigurationError, DeliveryFailed, InvalidInput, RotationFailed
from core.domain.events import OutboxMessage
from core.domain.values import ScopeRef, ScopeType, SecretValue
from plugins.rotators import WebhookRotator
from ports.rotation import RotationTarget
from tests.support.webhooks import WebhookReceiver, webhook_receiver

KEY = "a-shared-hmac-key-for-webhooks-0123"
VALUE = b"sk-rotated-secret-value-77aa"
TARGET = RotationTarget(uuid.uuid4(), "DB_PASSWORD", "project/p-42", "production", 7)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


def message(target: str = "ops") -> OutboxMessage:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return OutboxMessage(
        id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        type="secret.rotated",
        target=target,
        payload={"id": "e-1", "type": "secret.rotated", "secret": {"name": "A"}, "version": 2},
        created_at=now,
        next_attempt_at=now,
    )


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone"


# -- the event publisher ---------------------------------------------------------------------


def test_an_event_is_posted_signed_and_carries_its_payload(receiver: WebhookReceiver) -> None:
    publisher = WebhookPublisher(
        {"ops": WebhookTarget("ops", receiver.url + "/hook", KEY.encode())}
    )
    sent = message()

    publisher.publish(sent)

    [request] = receiver.requests
    assert request.path == "/hook" and request.json() == sent.payload
    assert request.headers["X-Secrets-Event"] == "secret.rotated"
    assert request.headers["X-Secrets-Event-Id"] == str(sent.event_id)
    assert verify_signature(KEY.encode(), request.headers, request.body)
    assert not verify_signature(b"another-key-0123456789", request.headers, request.body)
    assert not verify_signature(KEY.encode(), request.headers, request.body + b" ")


def test_a_refused_or_unreachable_delivery_fails_naming_the_webhook_only(
    receiver: WebhookReceiver,
) -> None:
    url = receiver.url + "/hook?token=url-credential"
    publisher = WebhookPublisher(
        {
            "ops": WebhookTarget("ops", url, KEY.encode()),
            "gone": WebhookTarget("gone", closed_port_url(), KEY.encode(), timeout=2),
        }
    )
    receiver.status, receiver.reply = 500, b'{"echo": "' + VALUE + b'"}'

    with pytest.raises(DeliveryFailed) as refused:
        publisher.publish(message("ops"))
    assert refused.value.message == "webhook 'ops' answered HTTP 500"
    with pytest.raises(
        DeliveryFailed, match="webhook 'gone' could not be reached: ConnectionError"
    ):
        publisher.publish(message("gone"))
    with pytest.raises(DeliveryFailed, match="no webhook 'removed'"):
        publisher.publish(message("removed"))


def test_signatures_expire_and_bind_the_timestamp() -> None:
    body = b'{"a":1}'
    now = str(int(time.time()))
    fresh = {TIMESTAMP_HEADER: now, SIGNATURE_HEADER: sign(b"k" * 16, now, body)}
    old = str(int(time.time()) - 3600)
    stale = {TIMESTAMP_HEADER: old, SIGNATURE_HEADER: sign(b"k" * 16, old, body)}
    moved = {**fresh, TIMESTAMP_HEADER: str(int(now) - 1)}
    assert verify_signature(b"k" * 16, fresh, body)
    assert not verify_signature(b"k" * 16, stale, body)
    assert not verify_signature(b"k" * 16, moved, body)


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://hooks.example.com/x", False),
        ("http://127.0.0.1:8080/x", False),
        ("http://localhost/x", False),
        ("http://[::1]:9/x", False),
        ("http://hooks.example.com/x", True),
        ("ftp://hooks.example.com/x", True),
        ("https:///x", True),
    ],
)
def test_webhook_urls_are_https_unless_loopback(url: str, refused: bool) -> None:
    assert (url_problem(url) is not None) == refused


def test_hmac_keys_are_read_by_reference(tmp_path) -> None:
    key_file = tmp_path / "hook.key"
    key_file.write_text(KEY + "\n")
    assert read_key({"secret_env": "HOOK"}, {"HOOK": KEY}, "x") == KEY.encode()
    assert read_key({"secret_file": str(key_file)}, {}, "x") == KEY.encode()
    with pytest.raises(LookupError, match="HOOK is not set"):
        read_key({"secret_env": "HOOK"}, {}, "x")
    with pytest.raises(LookupError, match="shorter than 16"):
        read_key({"secret_env": "HOOK"}, {"HOOK": "short"}, "x")
    with pytest.raises(LookupError, match="cannot read"):
        read_key({"secret_file": str(tmp_path / "none")}, {}, "x")
    with pytest.raises(LookupError, match="secret_env or secret_file"):
        read_key({}, {}, "x")


# -- configured webhooks ---------------------------------------------------------------------


def test_configured_webhooks_are_checked_and_their_keys_read_once(tmp_path) -> None:
    key_file = tmp_path / "hook.key"
    key_file.write_text(KEY + "\n")
    tables = {
        "ops": {"url": "https://hooks.example.com/x", "secret_env": "HOOK", "timeout_seconds": 3},
        "db": {
            "url": "http://127.0.0.1:9/x",
            "secret_file": str(key_file),
            "scopes": ["organization/acme", "global"],
        },
    }

    targets = configured_targets(tables, {"HOOK": KEY}, "rotation.webhooks")

    assert targets["ops"] == WebhookTarget("ops", tables["ops"]["url"], KEY.encode(), 3.0)
    assert targets["db"].key == KEY.encode()
    assert targets["db"].scopes == (
        ScopeRef(ScopeType.ORGANIZATION, "acme"),
        ScopeRef.global_scope(),
    )
    assert KEY not in repr(targets) and "hooks.example.com" not in repr(targets)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"url": "http://10.0.0.1/x", "secret_env": "HOOK"},
            "'rotation.webhooks.db.url' must be an https:// URL",
        ),
        ({"url": "https://h.example.com/", "secret_env": "NONE"}, "NONE is not set"),
        ({"url": "https://h.example.com/", "secret_env": "SHORT"}, "shorter than 16"),
        (
            {"url": "https://h.example.com/", "secret_env": "HOOK", "scopes": ["project"]},
            "'rotation.webhooks.db.scopes': 'project' is not a scope",
        ),
    ],
)
def test_a_bad_configured_webhook_stops_the_start_naming_its_key(
    options: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        configured_targets({"db": options}, {"HOOK": KEY, "SHORT": "short"}, "rotation.webhooks")
    assert "rotation.webhooks.db" in refused.value.message


# -- the webhook rotator ---------------------------------------------------------------------


def rotator_for(url: str, timeout: float = 10.0) -> WebhookRotator:
    """A webhook rotator whose one configured target, `owner`, is `url`."""
    return WebhookRotator({"owner": WebhookTarget("owner", url, KEY.encode(), timeout)})


def test_the_owning_system_receives_the_new_value_signed(receiver: WebhookReceiver) -> None:
    rotator = rotator_for(receiver.url + "/rotate")
    settings = {"target": "owner", "length": 48}
    rotator.check_settings(settings)

    value = rotator.generate(settings)
    rotator.apply(TARGET, value, settings)

    [request] = receiver.requests
    assert request.path == "/rotate"
    assert verify_signature(KEY.encode(), request.headers, request.body)
    assert request.json() == {
        "secret_id": str(TARGET.secret_id),
        "name": "DB_PASSWORD",
        "scope": "project/p-42",
        "environment": "production",
        "version": 7,
        "value": value.reveal().decode(),
        "encoding": "utf-8",
    }
    assert len(value) == 48


def test_binary_values_travel_as_base64(receiver: WebhookReceiver) -> None:
    rotator_for(receiver.url).apply(TARGET, SecretValue(b"\xff\x00"), {"target": "owner"})
    assert receiver.bodies()[0]["encoding"] == "base64"


@pytest.mark.parametrize("status", [400, 409, 500, 302])
def test_a_refusal_fails_the_rotation_without_echoing_anything(
    receiver: WebhookReceiver, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status, receiver.reply = status, b'{"echo": "' + VALUE + b'"}'

    with pytest.raises(RotationFailed) as failed:
        rotator_for(receiver.url + "/r?token=url-credential").apply(
            TARGET, SecretValue(VALUE), {"target": "owner"}
        )

    reason = "the rotation target 'owner' refused the new value"
    assert (failed.value.message, failed.value.details) == (reason, {"reason": reason})
    # The status goes to the server's log, with neither the URL nor the value.
    [logged] = [r.getMessage() for r in caplog.records if r.name == "plugins.rotators"]
    assert f"HTTP {status}" in logged and "url-credential" not in logged
    assert VALUE.decode() not in logged and KEY not in logged


def test_an_unreachable_target_fails_the_rotation_naming_the_target_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(RotationFailed) as failed:
        rotator_for(closed_port_url(), timeout=2).apply(
            TARGET, SecretValue(VALUE), {"target": "owner"}
        )

    reason = "the rotation target 'owner' could not be reached"
    assert (failed.value.message, failed.value.details) == (reason, {"reason": reason})
    assert "ConnectionError" in caplog.text and "127.0.0.1" not in caplog.text


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.target"),
        ({"target": "elsewhere"}, "settings.target"),
        ({"target": 7}, "settings.target"),
        ({"target": "owner", "url": "https://example.com/x"}, "settings.url"),
        ({"target": "owner", "secret_env": "SECRETS_DEV_ROOT_TOKEN"}, "settings.secret_env"),
        ({"target": "owner", "secret_file": "/etc/shadow"}, "settings.secret_file"),
        ({"target": "owner", "timeout_seconds": 5}, "settings.timeout_seconds"),
        ({"target": "owner", "hmac_key": "inline"}, "settings.hmac_key"),
        ({"target": "owner", "length": 7}, "settings.length"),
    ],
)
def test_webhook_rotator_settings_name_a_configured_target_only(settings: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rotator_for("https://owner.example.com/rotate").check_settings(settings)
    assert refused.value.details["field"] == field
    assert "owner.example.com" not in refused.value.message + str(refused.value.details)
    assert "owner" not in refused.value.message  # the names are in the details only


def test_a_stored_policy_naming_a_url_or_key_is_not_honoured(receiver: WebhookReceiver) -> None:
    """Settings from before targets: `apply` refuses them and sends nothing anywhere."""
    legacy = {"url": receiver.url + "/x", "secret_env": "SECRETS_DEV_ROOT_TOKEN"}

    with pytest.raises(InvalidInput, match="names a configured rotation target"):
        rotator_for(receiver.url).apply(TARGET, SecretValue(VALUE), legacy)

    assert receiver.requests == []
