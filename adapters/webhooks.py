"""Signed webhooks: the event publisher, and the signing both it and the webhook rotator use.

A request carries `X-Secrets-Timestamp` (Unix seconds) and `X-Secrets-Signature`,
`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under a key shared with the receiver. Every
webhook is the operator's (`configured_targets`: `[events.webhooks.<name>]`,
`[rotation.webhooks.<name>]`), its key given by reference (`secret_env` or `secret_file`) and
read once, at start. Receivers check the signature with `verify_signature` and refuse old
timestamps. Error messages name the webhook, never its URL (some URLs are credentials
themselves) nor anything the receiver answered.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from core.domain.errors import ConfigurationError, DeliveryFailed
from core.domain.events import OutboxMessage
from core.domain.values import GLOBAL_SCOPE_ID, ScopeRef, ScopeType
from ports.events import EventPublisher
from ports.webhooks import WebhookTarget

SIGNATURE_HEADER = "X-Secrets-Signature"
TIMESTAMP_HEADER = "X-Secrets-Timestamp"
MIN_KEY_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost"})


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    key: bytes, headers: Mapping[str, str], body: bytes, *, max_age: float = 300
) -> bool:
    """What a receiver checks: the signature matches, and the timestamp is recent."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age:
        return False
    return hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), sign(key, timestamp, body))


def url_problem(url: str) -> str | None:
    """Why a webhook URL is refused: values travel over HTTPS, plain HTTP only to loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return None
    return "must be an https:// URL (http:// only to a loopback address)"


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_key(settings: Mapping[str, Any], environ: Mapping[str, str], where: str) -> bytes:
    """The HMAC key named by `secret_env` (an environment variable) or `secret_file`.

    Raises `LookupError` with a message naming the reference, never the key."""
    if settings.get("secret_env"):
        name = str(settings["secret_env"])
        text = environ.get(name, "")
        if not text:
            raise LookupError(f"{where}: the environment variable {name} is not set")
    elif settings.get("secret_file"):
        path = Path(str(settings["secret_file"]))
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise LookupError(f"{where}: cannot read {path}: {error.strerror}") from None
    else:
        raise LookupError(f"{where}: give the HMAC key by secret_env or secret_file")
    if len(text) < MIN_KEY_LENGTH:
        raise LookupError(f"{where}: the HMAC key is shorter than {MIN_KEY_LENGTH} characters")
    return text.encode("utf-8")


def configured_targets(
    tables: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str], section: str
) -> dict[str, WebhookTarget]:
    """The webhooks of configuration table `section` (e.g. `rotation.webhooks`), each checked:
    its URL, its HMAC key readable and long enough, its `scopes` (rotation targets). Raises
    `ConfigurationError` naming the configuration key."""
    targets = {}
    for name, options in tables.items():
        where = f"{section}.{name}"
        problem = url_problem(str(options.get("url", "")))
        if problem:
            raise ConfigurationError(f"configuration key '{where}.url' {problem}")
        try:
            key = read_key(options, environ, f"configuration key '{where}'")
        except LookupError as error:
            raise ConfigurationError(str(error)) from None
        scopes = tuple(_scope(text, f"{where}.scopes") for text in options.get("scopes", ()))
        timeout = float(options.get("timeout_seconds", 10.0))
        targets[name] = WebhookTarget(name, options["url"], key, timeout, scopes)
    return targets


def _scope(text: str, where: str) -> ScopeRef:
    """`organization/acme`, `project/p-42`, `user/alice`…, or `global`."""
    kind, _, scope_id = text.partition("/")
    if kind == ScopeType.GLOBAL.value and scope_id in ("", GLOBAL_SCOPE_ID):
        return ScopeRef.global_scope()
    if kind in {t.value for t in ScopeType} and kind != ScopeType.GLOBAL.value and scope_id:
        return ScopeRef(ScopeType(kind), scope_id)
    raise ConfigurationError(
        f"configuration key '{where}': '{text}' is not a scope: give <type>/<id> "
        "(organization, team, project or user) or global"
    )


def post_signed(
    session: requests.Session,
    url: str,
    payload: Any,
    key: bytes,
    timeout: float,
    extra_headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """POST `payload` as JSON, signed. Raises `requests.RequestException` if unreachable."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "secret-management",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(key, timestamp, body),
        **(extra_headers or {}),
    }
    return session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)


class WebhookPublisher(EventPublisher):
    """Delivers each outbox message to the webhook it names, signed; 2xx means delivered."""

    def __init__(self, targets: Mapping[str, WebhookTarget]) -> None:
        self._targets = dict(targets)
        self._session = requests.Session()

    def publish(self, message: OutboxMessage) -> None:
        target = self._targets.get(message.target)
        if target is None:
            raise DeliveryFailed(f"no webhook '{message.target}' is configured any more")
        event_headers = {
            "X-Secrets-Event": message.type,
            "X-Secrets-Event-Id": str(message.event_id),
        }
        try:
            response = post_signed(
                self._session,
                target.url,
                message.payload,
                target.key,
                target.timeout,
                event_headers,
            )
        except requests.RequestException as error:
            raise DeliveryFailed(
                f"webhook '{target.name}' could not be reached: {type(error).__name__}"
            ) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"webhook '{target.name}' answered HTTP {response.status_code}")

    def close(self) -> None:
        self._session.close()
