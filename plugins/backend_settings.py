"""One backend instance's settings, checked at start: unknown keys are refused, types are checked,
and credentials are referenced indirectly, by an environment variable or a file, never written
in the configuration file itself.

Settings arrive from TOML (typed) or from `SECRETS_BACKENDS__<NAME>__<KEY>` environment variables
(always strings), so numbers and flags are accepted in both forms. Plugin authors may use it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


class BackendSettings:
    """The settings of backend instance `instance`, refusing any key not in `known`."""

    def __init__(self, instance: str, settings: Mapping[str, Any], known: Iterable[str]) -> None:
        self.instance = instance
        self._settings = dict(settings)
        allowed = frozenset(known)
        unknown = sorted(set(self._settings) - allowed)
        if unknown:
            raise self.error(
                unknown[0], f"unknown setting; this backend takes {', '.join(sorted(allowed))}"
            )

    def error(self, key: str, problem: str) -> ConfigurationError:
        setting = f"backends.{self.instance}.{key}"
        return ConfigurationError(
            f"configuration key '{setting}': {problem}", details={"key": setting}
        )

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._settings.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(key, "must be a string")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise self.error(key, "is required")
        return value

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self._settings.get(key, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.error(key, "must be a whole number") from None
        if isinstance(value, bool) or not minimum <= number <= maximum:
            raise self.error(key, f"must be between {minimum} and {maximum}")
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self._settings.get(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE | FALSE:
            return value.lower() in TRUE
        raise self.error(key, "must be true or false")

    def credential(self, name: str, *, required: bool = False) -> str | None:
        """A credential given as `<name>_env` (a variable's name) or `<name>_file` (a path).

        The value itself never appears in the configuration, and no message here shows it.
        """
        env_key, file_key = f"{name}_env", f"{name}_file"
        variable, path = self.text(env_key), self.text(file_key)
        if variable and path:
            raise self.error(env_key, f"give either {env_key} or {file_key}, not both")
        if variable:
            value = os.environ.get(variable, "").strip()
            if not value:
                raise self.error(env_key, f"the environment variable {variable} is not set")
            return value
        if path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise self.error(file_key, f"cannot read {path}: {error.strerror}") from None
            if not value:
                raise self.error(file_key, f"{path} is empty")
            return value
        if required:
            raise self.error(env_key, f"is required (or {file_key})")
        return None
