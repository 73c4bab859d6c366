"""Built-in rotators: `random` makes a password or token; `webhook` makes one the same way and
has the owning system accept it first, through an HMAC-signed request to a rotation target the
operator configured.

Settings (a rotation policy's `settings`):
- both: `length` (8-4096, default 32) and `alphabet` (`alphanumeric`, `hex`, `urlsafe`,
  `printable`; default `alphanumeric`) or `characters` (the characters to draw from);
- `webhook`: `target`, the name of a `[rotation.webhooks.<name>]` table of the configuration,
  which gives the URL, the HMAC key (by reference, read at start), the timeout and the scopes
  whose secrets may use it. A policy never names a URL, a key variable or a key file: `url`,
  `secret_env`, `secret_file` and `timeout_seconds` are refused, and a stored policy that still
  holds them fails its runs until it is set again naming a target.

The target receives `{"secret_id", "name", "scope", "environment", "version", "value",
"encoding"}` and answers 2xx once the owning system uses the new value (it may receive the same
version again after a crash, and must accept it again). Anything else fails the rotation, the
current value stays, and the reason says only "the rotation target '<name>' refused the new
value" or "… could not be reached"; the status or the error's kind goes to the log.
"""

from __future__ import annotations

import base64
import logging
import secrets
import string
from collections.abc import Mapping
from typing import Any

import requests

from adapters.webhooks import post_signed
from core.domain.errors import InvalidInput, RotationFailed
from core.domain.values import ScopeRef, SecretValue
from plugins.hookspecs import hookimpl
from ports.rotation import RotationTarget, Rotator, RotatorPlugin
from ports.webhooks import WebhookTarget

log = logging.getLogger(__name__)

ALPHABETS = {
    "alphanumeric": string.ascii_letters + string.digits,
    "hex": string.digits + "abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "printable": string.ascii_letters + string.digits + string.punctuation,
}
GENERATOR_SETTINGS = frozenset({"length", "alphabet", "characters"})
WEBHOOK_SETTINGS = frozenset({"target"})
# What a policy once named directly; the operator's configuration says it now.
DIRECT_SETTINGS = frozenset({"url", "secret_env", "secret_file", "timeout_seconds"})
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
    if not isinstance(alphabet, str) or alphabet not in ALPHABETS:
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
    """Hands the new value to a rotation target the operator configured, by name."""

    name = "webhook"
    calls_out = True

    def __init__(self, targets: Mapping[str, WebhookTarget]) -> None:
        self._targets = dict(targets)
        self._session = requests.Session()

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        _refuse_direct(settings)
        _check_known(settings, GENERATOR_SETTINGS | WEBHOOK_SETTINGS)
        generator_options(settings)
        self._target(settings)

    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        return random_value(settings)

    def scopes_served(self, settings: Mapping[str, Any]) -> tuple[ScopeRef, ...]:
        return self._target(settings).scopes

    def apply(
        self, target: RotationTarget, value: SecretValue, settings: Mapping[str, Any]
    ) -> None:
        webhook = self._target(settings)
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
        try:
            response = post_signed(
                self._session, webhook.url, payload, webhook.key, webhook.timeout
            )
        except requests.RequestException as error:
            log.warning(
                "rotation target '%s' could not be reached for secret %s: %s",
                webhook.name,
                target.secret_id,
                type(error).__name__,
            )
            raise _failed(f"the rotation target '{webhook.name}' could not be reached") from None
        if not 200 <= response.status_code < 300:
            log.warning(
                "rotation target '%s' refused version %d of secret %s: HTTP %d",
                webhook.name,
                target.version,
                target.secret_id,
                response.status_code,
            )
            raise _failed(f"the rotation target '{webhook.name}' refused the new value")

    def _target(self, settings: Mapping[str, Any]) -> WebhookTarget:
        """The configured target the settings name; `InvalidInput` naming the setting if none."""
        _refuse_direct(settings)
        name = settings.get("target")
        if isinstance(name, str) and name in self._targets:
            return self._targets[name]
        problem = (
            f"target '{name[:64]}' is not configured"
            if isinstance(name, str) and name
            else "target is required: the name of a [rotation.webhooks] table"
        )
        # The names go in the details: told to an admin setting a policy, never in the reason
        # a failed run records (which editors and viewers see).
        raise InvalidInput(
            f"rotation settings: {problem}",
            details={"field": "settings.target", "configured": sorted(self._targets)},
        )


def _refuse_direct(settings: Mapping[str, Any]) -> None:
    named = sorted(DIRECT_SETTINGS & set(settings))
    if named:
        raise _refuse(
            f"unknown {', '.join(named)}: a policy names a configured rotation target (target), "
            "whose configuration gives the URL, the HMAC key and the timeout; never the policy",
            named[0],
        )


def _failed(reason: str) -> RotationFailed:
    return RotationFailed(reason, details={"reason": reason})


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
            factory=lambda context: WebhookRotator(context.webhooks),
            description="a random value a configured rotation target accepts (signed webhook)",
        ),
    ]
