"""Signed webhooks against a real HTTP receiver on loopback: the event publisher and the webhook
rotator, their signatures, their failures, and that errors name no URL and echo no answer."""

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
    read_key,
    sign,
    url_problem,
    verify_signature,
)
from core.errors import DeliveryFailed, InvalidInput, RotationFailed
from core.events import OutboxMessage
from plugins.rotators import WebhookRotator
from ports.rotation import RotationTarget
from ports.values import SecretValue
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


# -- the webhook rotator ---------------------------------------------------------------------


def settings_for(receiver: WebhookReceiver, **extra) -> dict:
    return {"url": receiver.url + "/rotate", "secret_env": "OWNER_KEY", **extra}


def test_the_owning_system_receives_the_new_value_signed(receiver: WebhookReceiver) -> None:
    rotator = WebhookRotator({"OWNER_KEY": KEY})
    settings = settings_for(receiver, length=48)
    rotator.check_settings(settings)

    value = rotator.generate(settings)
    rotator.apply(TARGET, value, settings)

    [request] = receiver.requests
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
    WebhookRotator({"OWNER_KEY": KEY}).apply(
        TARGET, SecretValue(b"\xff\x00"), settings_for(receiver)
    )
    assert receiver.bodies()[0]["encoding"] == "base64"


@pytest.mark.parametrize("status", [400, 409, 500, 302])
def test_a_refusal_fails_the_rotation_without_echoing_anything(
    receiver: WebhookReceiver, status: int
) -> None:
    receiver.status, receiver.reply = status, b'{"echo": "' + VALUE + b'"}'

    with pytest.raises(RotationFailed) as failed:
        WebhookRotator({"OWNER_KEY": KEY}).apply(TARGET, SecretValue(VALUE), settings_for(receiver))

    reason = f"the owning system refused the new value: HTTP {status}"
    assert (failed.value.message, failed.value.details) == (reason, {"reason": reason})


def test_an_unreachable_owner_or_a_missing_key_fails_the_rotation() -> None:
    settings = {"url": closed_port_url(), "secret_env": "OWNER_KEY", "timeout_seconds": 2}
    with pytest.raises(RotationFailed, match="could not be reached: ConnectionError"):
        WebhookRotator({"OWNER_KEY": KEY}).apply(TARGET, SecretValue(VALUE), settings)
    with pytest.raises(RotationFailed, match="OWNER_KEY is not set"):
        WebhookRotator({}).apply(TARGET, SecretValue(VALUE), settings)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"secret_env": "K"}, "settings.url"),
        ({"url": "http://example.com/x", "secret_env": "K"}, "settings.url"),
        ({"url": "https://example.com/x"}, "settings.secret_env"),
        (
            {"url": "https://example.com/x", "secret_env": "K", "secret_file": "/k"},
            "settings.secret_env",
        ),
        (
            {"url": "https://example.com/x", "secret_env": "K", "hmac_key": "inline"},
            "settings.hmac_key",
        ),
        (
            {"url": "https://example.com/x", "secret_env": "K", "timeout_seconds": 0},
            "settings.timeout_seconds",
        ),
    ],
)
def test_webhook_rotator_settings_are_checked(settings: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        WebhookRotator({}).check_settings(settings)
    assert refused.value.details == {"field": field}
