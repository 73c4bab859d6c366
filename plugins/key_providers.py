"""The built-in key providers: `env`, `file`, and `auto` (environment variable, else file).

Each refuses a `[keys]` setting it does not take, so a misspelt `path` stops the start instead
of a key file being made somewhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from adapters.keys import ENV_VAR, EnvKeyProvider, FileKeyProvider
from core.domain.errors import ConfigurationError
from plugins.backend_settings import PluginSettings
from plugins.hookspecs import hookimpl
from ports.security import KeyProvider, KeyProviderContext, KeyProviderPlugin

DEFAULT_KEY_FILE = "master.key"


def env_provider(settings: Mapping[str, Any], context: KeyProviderContext) -> KeyProvider:
    PluginSettings("keys", settings, known=())
    return EnvKeyProvider(context.environ)


def file_provider(settings: Mapping[str, Any], context: KeyProviderContext) -> KeyProvider:
    """The key file at `path`; generated when missing, except in production mode."""
    return FileKeyProvider(_key_file(settings, context), create=not context.production)


def auto_provider(settings: Mapping[str, Any], context: KeyProviderContext) -> KeyProvider:
    path = _key_file(settings, context)
    if ENV_VAR in context.environ:
        return EnvKeyProvider(context.environ)
    if context.production and not os.path.exists(path):
        raise ConfigurationError(
            f"production mode needs a key: set {ENV_VAR} or [keys] path (no key file at {path})",
            details={"key": "keys.path"},
        )
    return FileKeyProvider(path, create=not context.production)


def _key_file(settings: Mapping[str, Any], context: KeyProviderContext) -> str:
    path = PluginSettings("keys", settings, known=("path",)).text("path")
    return path or os.path.join(context.data_dir, DEFAULT_KEY_FILE)


@hookimpl
def secret_management_register_key_providers() -> list[KeyProviderPlugin]:
    return [
        KeyProviderPlugin("env", env_provider, f"one key, base64-encoded in {ENV_VAR}"),
        KeyProviderPlugin("file", file_provider, "key versions in a file only its owner reads"),
        KeyProviderPlugin("auto", auto_provider, f"{ENV_VAR} when it is set, else the key file"),
    ]
