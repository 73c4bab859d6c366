"""The settings of one configured plugin piece (a backend instance, a key provider, an audit
sink), checked at start: unknown keys are refused, types are checked, and credentials are
referenced indirectly, by an environment variable or a file, never written in the configuration
file itself.

Settings arrive from TOML (typed) or from `SECRETS_<TABLE>__<KEY>` environment variables (always
text), so numbers, flags and lists are accepted in both forms; `setting_list` is the one rule
for a list given as text, used by the service's own configuration schema too. Plugin authors may
use this module.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.domain.errors import ConfigurationError

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


def setting_list(value: Any) -> list[Any]:
    """A list-valued setting: a TOML array as it is; from the environment, a TOML/JSON array
    literal (`["HS256", "RS256"]`, `[30, 7, 1]`) or else comma-separated items (`HS256,RS256`),
    each stripped, empty ones dropped (so an empty text is an empty list).

    Raises ValueError (without the value, which may be anything) when it is neither.
    """
    if isinstance(value, list | tuple):
        return list(value)
    if not isinstance(value, str):
        raise ValueError("must be a list")
    text = value.strip()
    if not text.startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        document = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        document = {}
    if set(document) != {"value"} or not isinstance(document["value"], list):
        raise ValueError('must be a list: comma-separated, or an array such as ["a", "b"]')
    return list(document["value"])


class PluginSettings:
    """The settings under configuration key `section` (`keys`, `audit.file`…), refusing any key
    not in `known`."""

    def __init__(self, section: str, settings: Mapping[str, Any], known: Iterable[str]) -> None:
        self.section = section
        self._settings = dict(settings)
        allowed = frozenset(known)
        unknown = sorted(set(self._settings) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "no settings"
            raise self.error(unknown[0], f"unknown setting; [{section}] takes {takes}")

    def error(self, key: str, problem: str) -> ConfigurationError:
        setting = f"{self.section}.{key}"
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

    def texts(self, key: str, default: Iterable[str] = ()) -> list[str]:
        """A list of strings (`setting_list`'s rule for one given as text)."""
        try:
            items = setting_list(self._settings.get(key, list(default)))
        except ValueError as error:
            raise self.error(key, str(error)) from None
        if not all(isinstance(item, str) and item for item in items):
            raise self.error(key, "must be a list of non-empty strings")
        return items

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


class BackendSettings(PluginSettings):
    """The settings of backend instance `instance` (`[backends.<instance>]`)."""

    def __init__(self, instance: str, settings: Mapping[str, Any], known: Iterable[str]) -> None:
        self.instance = instance
        super().__init__(f"backends.{instance}", settings, known)
