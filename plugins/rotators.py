"""Built-in rotators: `random` makes a password or token; `webhook` makes one the same way and
has the owning system accept it first, through an HMAC-signed HTTPS request.

Settings (a rotation policy's `settings`):
- both: `length` (8-4096, default 32) and `alphabet` (`alphanumeric`, `hex`, `urlsafe`,
  `printable`; default `alphanumeric`) or `characters` (the characters to draw from);
- `webhook`: `url` (https, or http to loopback), `secret_env` or `secret_file` (the HMAC key,
  by reference), `timeout_seconds` (1-60, default 10).

The webhook receives `{"secret_id", "name", "scope", "environment", "version", "value",
"encoding"}` and answers 2xx once the owning system uses the new value (it may receive the same
version again after a crash, and must accept it again). Anything else fails the rotation and
the current value stays.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Mapping
from typing import Any

import requests

from adapters.webhooks import post_signed, read_key, url_problem
from core.errors import InvalidInput, RotationFailed
from plugins.hookspecs import hookimpl
from ports.rotation import RotationTarget, Rotator, RotatorPlugin
from ports.values import SecretValue

ALPHABETS = {
    "alphanumeric": string.ascii_letters + string.digits,
    "hex": string.digits + "abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "printable": string.ascii_letters + string.digits + string.punctuation,
}
GENERATOR_SETTINGS = frozenset({"length", "alphabet", "characters"})
WEBHOOK_SETTINGS = frozenset({"url", "secret_env", "secret_file", "timeout_seconds"})
DEFAULT_LENGTH = 32


def _refuse(message: str, key: str) -> InvalidInput:
    return InvalidInput(f"rotation settings: {message}", details={"field": f"settings.{key}"})


def _check_known(settings: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(settings) - known)
    if unknown:
        raise _refuse(
            f"unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}", unknown[0]
        )


def _integer(settings: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(f"{key} is an integer between {low} and {high}", key)
    return value


def generator_options(settings: Mapping[str, Any]) -> tuple[int, str]:
    """The length and the characters to draw from."""
    length = _integer(settings, "length", DEFAULT_LENGTH, 8, 4096)
    if "characters" in settings and "alphabet" in settings:
        raise _refuse("give alphabet or characters, not both", "characters")
    if "characters" in settings:
        characters = settings["characters"]
        if not isinstance(characters, str) or len(set(characters)) < 2:
            raise _refuse(
                "characters is a string of at least two distinct characters", "characters"
            )
        return length, "".join(sorted(set(characters)))
    alphabet = settings.get("alphabet", "alphanumeric")
    if alphabet not in ALPHABETS:
        raise _refuse(f"alphabet is one of {', '.join(ALPHABETS)}", "alphabet")
    return length, ALPHABETS[alphabet]


def random_value(settings: Mapping[str, Any]) -> SecretValue:
    length, characters = generator_options(settings)
    return SecretValue.from_text("".join(secrets.choice(characters) for _ in range(length)))


class RandomRotator(Rotator):
    name = "random"

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        _check_known(settings, GENERATOR_SETTINGS)
        generator_options(settings)

    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        return random_value(settings)


class WebhookRotator(Rotator):
    name = "webhook"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._session = requests.Session()

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        _check_known(settings, GENERATOR_SETTINGS | WEBHOOK_SETTINGS)
        generator_options(settings)
        url = settings.get("url")
        problem = url_problem(url) if isinstance(url, str) else "is required"
        if problem:
            raise _refuse(f"url {problem}", "url")
        if bool(settings.get("secret_env")) == bool(settings.get("secret_file")):
            raise _refuse(
                "give the HMAC key by secret_env or secret_file (one of them)", "secret_env"
            )
        _integer(settings, "timeout_seconds", 10, 1, 60)

    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        return random_value(settings)

    def apply(
        self, target: RotationTarget, value: SecretValue, settings: Mapping[str, Any]
    ) -> None:
        try:
            key = read_key(settings, self._environ, "webhook rotator")
        except LookupError as error:
            raise RotationFailed(str(error), details={"reason": str(error)}) from None
        raw = value.reveal()
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        payload = {
            "secret_id": str(target.secret_id),
            "name": target.name,
            "scope": target.scope,
            "environment": target.environment,
            "version": target.version,
            "value": text,
            "encoding": encoding,
        }
        timeout = _integer(settings, "timeout_seconds", 10, 1, 60)
        try:
            response = post_signed(self._session, str(settings["url"]), payload, key, timeout)
        except requests.RequestException as error:
            reason = f"the owning system could not be reached: {type(error).__name__}"
            raise RotationFailed(reason, details={"reason": reason}) from None
        if not 200 <= response.status_code < 300:
            reason = f"the owning system refused the new value: HTTP {response.status_code}"
            raise RotationFailed(reason, details={"reason": reason})


@hookimpl
def secret_management_register_rotators() -> list[RotatorPlugin]:
    return [
        RotatorPlugin(
            name="random",
            factory=lambda context: RandomRotator(),
            description="a random password or token (length, alphabet)",
        ),
        RotatorPlugin(
            name="webhook",
            factory=lambda context: WebhookRotator(context.environ),
            description="a random value the owning system accepts through a signed webhook",
        ),
    ]
