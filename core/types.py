"""Secret types as core sees them: which type names exist, and the check a value passes before
it is stored.

What a check derives (a certificate's subject, a key's fingerprint, a database host) is kept in
the secret's tags under `type.` — refreshed with every new value, so that prefix is reserved. When
a value carries its own expiry (a certificate's notAfter) and the secret was given none, the
value's expiry becomes the secret's, and `type.expires_at` records that it came from the value:
the next value's expiry then replaces it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from core.domain.errors import InvalidSecretValue
from core.domain.secrets import Secret
from core.domain.values import SecretValue
from core.policy import MAX_TAG_VALUE, TAG_KEY_PATTERN
from core.registry import Registry
from ports.types import FieldProblem, SecretType, TypeCheck

log = logging.getLogger(__name__)

DERIVED_TAG_PREFIX = "type."
DERIVED_EXPIRY_TAG = "type.expires_at"
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TypeRegistry:
    """The secret types of the installed plugins, by name.

    Built without types (`TypeRegistry()`), it accepts every type name and checks nothing: for
    tools and tests that do not exercise types. The service is always built with its plugins'.
    """

    def __init__(self, types: Mapping[str, SecretType] | None = None) -> None:
        self._types = (
            None if types is None else Registry("secret type", types, details={"field": "type"})
        )

    def __iter__(self) -> Iterator[SecretType]:
        return iter(() if self._types is None else self._types)

    def require(self, name: str) -> None:
        """Refuse a type name no plugin registers (400, naming the field)."""
        if self._types is not None:
            self._types.get(name)

    def inspect(self, name: str, value: SecretValue) -> TypeCheck:
        """The check of `value` as a `name`, its problems returned rather than raised.

        A plugin that fails while checking is a bug in that plugin: the value is refused, and
        only the kind of failure is logged (a message could quote the value)."""
        self.require(name)
        if self._types is None:
            return TypeCheck()
        try:
            return self._types.get(name).validate(value)
        except Exception as error:
            log.warning("secret type '%s' failed checking a value: %s", name, type(error).__name__)
            return TypeCheck(problems=(FieldProblem("value", "could not be checked"),))

    def environment(self, name: str, variable: str, value: SecretValue) -> dict[str, str] | None:
        """`value`, a `name`, as the environment variables its type documents (`variable` where
        the type has no names of its own); None when it cannot be variables: it no longer passes
        its type, or the plugin gives a name that is not a variable's or a value holding NUL.

        The value is checked first, as it was before it was stored (a type may have become
        stricter since): the port says a type refuses to render a value it does not pass, and
        this holds for every plugin, not only those that keep to it. A plugin that fails is
        logged by the kind of failure only (a message could quote the value), as in `inspect`."""
        try:
            if self._types is None:  # every value is generic
                rendered = {variable: value.reveal().decode("utf-8")}
            elif name not in self._types or not self.inspect(name, value).valid:
                return None
            else:
                rendered = self._types.get(name).environment(variable, value)
        except Exception as error:
            log.warning("secret type '%s' gave no variables: %s", name, type(error).__name__)
            return None
        if all(
            isinstance(key, str)
            and VARIABLE_NAME.fullmatch(key)
            and isinstance(text, str)
            and "\x00" not in text
            for key, text in rendered.items()
        ):
            return dict(rendered)
        return None

    def check(self, name: str, value: SecretValue) -> TypeCheck:
        """The check of `value` as a `name`; `InvalidSecretValue` (422) if it fails."""
        check = self.inspect(name, value)
        if not check.valid:
            raise invalid_value(name, check.problems)
        return check


def invalid_value(type_name: str, problems: tuple[FieldProblem, ...]) -> InvalidSecretValue:
    first = problems[0]
    return InvalidSecretValue(
        f"the value is not a valid {type_name}: {first.field}: {first.reason}",
        details={
            "type": type_name,
            "field": first.field,
            "reason": first.reason,
            "problems": [{"field": p.field, "reason": p.reason} for p in problems],
        },
    )


def derived_tags(check: TypeCheck) -> dict[str, str]:
    """The check's metadata as `type.*` tags; what does not fit a tag is left out."""
    tags = {
        DERIVED_TAG_PREFIX + key: text
        for key, text in check.metadata.items()
        if TAG_KEY_PATTERN.fullmatch(DERIVED_TAG_PREFIX + key) and len(text) <= MAX_TAG_VALUE
    }
    if check.expires_at is not None:
        tags[DERIVED_EXPIRY_TAG] = check.expires_at.isoformat()
    return tags


def kept_derived_tags(tags: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str]:
    """New tags for a secret: the caller's own (any `type.*` key given is ignored, so a tag list
    read and sent back round-trips) and the `type.*` tags its value gave, which no caller sets."""
    own = {key: text for key, text in tags.items() if not key.startswith(DERIVED_TAG_PREFIX)}
    return own | {key: text for key, text in current.items() if key.startswith(DERIVED_TAG_PREFIX)}


def typed_metadata(
    tags: Mapping[str, str], expires_at: datetime | None, check: TypeCheck
) -> dict[str, Any]:
    """Tags and expiry of a new secret: the caller's tags (without `type.*`) and the derived
    ones; the caller's expiry, else the value's."""
    own = {key: text for key, text in tags.items() if not key.startswith(DERIVED_TAG_PREFIX)}
    return {
        "tags": own | derived_tags(check),
        "expires_at": expires_at if expires_at is not None else check.expires_at,
    }


def retyped_metadata(secret: Secret, check: TypeCheck) -> dict[str, Any]:
    """Tags and expiry of `secret` once a new value is its current one: fresh derived tags, and
    the new value's expiry where the old expiry came from the old value."""
    expires_at = secret.expires_at
    if expires_at is not None and _expiry_came_from_value(secret, expires_at):
        expires_at = check.expires_at
    return typed_metadata(secret.tags, expires_at, check)


def _expiry_came_from_value(secret: Secret, expires_at: datetime) -> bool:
    recorded = secret.tags.get(DERIVED_EXPIRY_TAG)
    try:
        return recorded is not None and datetime.fromisoformat(recorded) == expires_at
    except ValueError:
        return False
