"""What the external storage backends (Vault/OpenBao, AWS, Azure, GCP) share.

- External names: `<prefix><secret uuid>`, checked at start against the provider's name rule.
- Locators: the external name and the provider's id of one version, plus the version key the
  value was written for (or the mark of an adopted value), and the rule binding them to a key.
- Calls: one SDK call, its vendor exceptions translated into core errors, detached from them.
- Health timing, the size check, and SDK loggers kept from printing request or response bodies.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, unquote

from core.adoption import adopted_secret_id
from core.domain.errors import NotFound, ServiceError, ValueIntegrityError, ValueTooLarge
from core.domain.values import SecretValue, VersionKey
from plugins.backend_settings import BackendSettings
from ports.storage import BackendHealth, ExternalSecret

Result = TypeVar("Result")

ADOPTED = "adopted"
# The longest secret UUID and version number a derived name must still hold.
SAMPLE_ID = uuid.UUID(int=2**128 - 1)
SAMPLE_VERSION = 2**31 - 1


@dataclass(frozen=True)
class ExternalNames:
    """The names this service gives its values in a store: `<prefix><secret uuid>`.

    A backend may put several objects under one secret's name (`<name>/<more>`); every name
    that starts with a secret's name belongs to that secret, and to no other.
    """

    prefix: str

    @classmethod
    def checked(
        cls,
        prefix: str,
        rule: re.Pattern[str],
        settings: BackendSettings,
        key: str = "prefix",
        suffix: Callable[[int], str] = lambda version: "",
    ) -> ExternalNames:
        """Names with this prefix, refused (naming setting `key`) unless each obeys `rule`."""
        names = cls(prefix)
        longest = names.for_secret(SAMPLE_ID) + suffix(SAMPLE_VERSION)
        if not rule.fullmatch(longest):
            raise settings.error(
                key, f"names such as {longest!r} must match the provider's rule {rule.pattern}"
            )
        return names

    def for_secret(self, secret_id: uuid.UUID) -> str:
        return f"{self.prefix}{secret_id}"

    def owner(self, name: str) -> uuid.UUID | None:
        """The secret a name was derived for, or None for a name this service did not derive."""
        if not name.startswith(self.prefix):
            return None
        rest = name[len(self.prefix) :]
        text, tail = rest[:36], rest[36:]
        try:
            secret_id = uuid.UUID(text)
        except ValueError:
            return None
        if str(secret_id) != text or (tail and not tail.startswith("/")):
            return None
        return secret_id


@dataclass(frozen=True)
class Locator:
    """Where one value is: an external name and the provider's id of that version of it.

    As text, fields percent-encoded: `<secret id>:<version>:<native id>:<name>` for a value `put`
    stored for that version key, `adopted:<native id>:<name>` for a value adopted from the store.
    """

    name: str
    native: str
    key: VersionKey | None = None

    def __str__(self) -> str:
        head = ADOPTED if self.key is None else f"{self.key.secret_id}:{self.key.version}"
        return f"{head}:{quote(self.native, safe='')}:{quote(self.name, safe='')}"

    @classmethod
    def parse(cls, text: str, backend: str) -> Locator:
        parts = text.split(":")
        try:
            if len(parts) == 3 and parts[0] == ADOPTED:
                key = None
            elif len(parts) == 4:
                key = VersionKey(uuid.UUID(parts[0]), int(parts[1]))
            else:
                raise ValueError(text)
        except ValueError:
            raise NotFound(f"{text!r} is not a locator of backend '{backend}'") from None
        return cls(name=unquote(parts[-1]), native=unquote(parts[-2]), key=key)


def bound_locator(text: str, key: VersionKey, backend: str, names: ExternalNames) -> Locator:
    """The locator `text` if it belongs to `key`, else `ValueIntegrityError`.

    A locator `put` returned belongs to the key it records, and names an object under that
    secret's name. An adopted one names an object the service did not name, so it belongs to
    version 1 of the secret whose id is `adopted_secret_id(backend, text)`: the one adoption made.
    """
    locator = Locator.parse(text, backend)
    if locator.key is None:
        belongs = key.version == 1 and key.secret_id == adopted_secret_id(backend, text)
    else:
        belongs = locator.key == key and names.owner(locator.name) == key.secret_id
    if not belongs:
        raise ValueIntegrityError(
            f"locator {text!r} of backend '{backend}' does not belong to version {key.version} "
            f"of secret {key.secret_id}"
        )
    return locator


def adoptable(
    names: Iterable[str],
    prefix: str,
    own: ExternalNames,
    current_version: Callable[[str], str | None],
) -> list[ExternalSecret]:
    """The values under `prefix` this service did not write, each at its current version (those
    without one, deleted or disabled, are left out)."""
    found = []
    for name in names:
        if name.startswith(prefix) and own.owner(name) is None:
            version = current_version(name)
            if version is not None:
                found.append(ExternalSecret(name, str(Locator(name, version))))
    return found


def call(
    operation: Callable[[], Result], translate: Callable[[Exception], ServiceError | None]
) -> Result:
    """Run one SDK call; an exception `translate` recognizes is raised as its core error.

    The core error is raised outside the handler, so the vendor exception (whose message, request
    or response may hold a value) is neither its cause nor its context. Anything `translate` does
    not recognize (None) is a programming error and propagates unchanged.
    """
    try:
        return operation()
    except Exception as error:
        translated = translate(error)
        if translated is None:
            raise
    raise translated


def timed_health(check: Callable[[], object]) -> BackendHealth:
    """Run `check` (one cheap authenticated call) and report how long it took."""
    started = time.perf_counter()
    try:
        check()
    except ServiceError as error:
        return BackendHealth(False, _elapsed_ms(started), error.message)
    return BackendHealth(True, _elapsed_ms(started))


def check_size(value: SecretValue, limit: int, backend: str) -> None:
    """Refuse a value over the backend's limit before anything is sent to the store."""
    if len(value) > limit:
        raise ValueTooLarge(
            f"backend '{backend}' stores values up to {limit} bytes; this one is {len(value)}",
            details={"limit": limit, "size": len(value)},
        )


def text_of(value: SecretValue) -> str | None:
    """The value as text when it is UTF-8, stored as such so other tools can read it; else None."""
    try:
        return value.reveal().decode("utf-8")
    except UnicodeDecodeError:
        return None


def quiet_sdk_loggers(*names: str) -> None:
    """SDKs log request and response bodies, values included, at DEBUG: keep them at INFO."""
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.INFO))


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
