"""The plugin manager: entry-point discovery, blocking, duplicate names and backend creation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

import plugins.key_providers
import plugins.local_backend
from core.domain.errors import ConfigurationError
from plugins import hookimpl
from plugins.format_dotenv import DotenvFormat
from plugins.manager import (
    backend_plugins,
    build_plugin_manager,
    create_backend,
    format_plugins,
    key_provider_plugins,
    secret_type_plugins,
)
from ports.formats import SecretFormat
from ports.security import KeyProviderPlugin
from ports.storage import BackendContext, BackendPlugin, StorageBackend
from ports.types import SecretType
from tests.fakes import AnyValueType, InMemoryBackend, RecordsFormat

CONTEXT = BackendContext(database=None, key_provider=None)


def memory_factory(
    name: str, settings: Mapping[str, Any], context: BackendContext
) -> StorageBackend:
    backend = InMemoryBackend(name)
    backend.settings = dict(settings)  # type: ignore[attr-defined]
    return backend


class CopycatPlugin:
    """A third-party plugin that registers names the built-in plugins already use."""

    @hookimpl
    def secret_management_register_backends(self) -> list[BackendPlugin]:
        return [BackendPlugin("local", memory_factory)]

    @hookimpl
    def secret_management_register_key_providers(self) -> list[KeyProviderPlugin]:
        return [KeyProviderPlugin("env", lambda settings, context: None)]  # type: ignore[arg-type,return-value]


def test_built_in_plugins_are_discovered_through_the_installed_entry_points() -> None:
    manager = build_plugin_manager()

    assert manager.get_plugin("local") is plugins.local_backend
    assert manager.get_plugin("key_providers") is plugins.key_providers
    from_distributions = {plugin for plugin, _ in manager.list_plugin_distributions()}
    assert {plugins.local_backend, plugins.key_providers} <= from_distributions
    assert "local" in backend_plugins(manager)
    assert {"env", "file", "auto"} <= set(key_provider_plugins(manager))


def test_a_blocked_plugin_is_not_loaded() -> None:
    manager = build_plugin_manager(blocked=["local"])

    assert manager.is_blocked("local")
    assert "local" not in backend_plugins(manager)
    assert {"env", "file", "auto"} <= set(key_provider_plugins(manager))


def test_duplicate_backend_names_are_refused_naming_both_plugins() -> None:
    manager = build_plugin_manager()
    manager.register(CopycatPlugin(), name="copycat")

    with pytest.raises(ConfigurationError, match="'local'") as raised:
        backend_plugins(manager)
    assert "'copycat'" in raised.value.message and "plugins 'local'" in raised.value.message


def test_duplicate_key_provider_names_are_refused_naming_both_plugins() -> None:
    manager = build_plugin_manager()
    manager.register(CopycatPlugin(), name="copycat")

    with pytest.raises(ConfigurationError, match="named 'env'") as raised:
        key_provider_plugins(manager)
    assert "'copycat'" in raised.value.message and "'key_providers'" in raised.value.message


def test_a_registration_of_the_wrong_kind_is_refused() -> None:
    class Confused:
        @hookimpl
        def secret_management_register_backends(self) -> list[object]:
            return ["local"]

    manager = build_plugin_manager(blocked=["local"])
    manager.register(Confused(), name="confused")
    with pytest.raises(ConfigurationError, match=r"plugin 'confused'.*not a BackendPlugin"):
        backend_plugins(manager)


def test_create_backend_gives_the_factory_its_settings_without_the_plugin_key() -> None:
    plugins = {"memory": BackendPlugin("memory", memory_factory)}

    backend = create_backend("cache", {"plugin": "memory", "size": 3}, plugins, CONTEXT)

    assert backend.name == "cache"
    assert backend.settings == {"size": 3}  # type: ignore[attr-defined]


@pytest.mark.parametrize("settings", [{"plugin": "s3"}, {}], ids=["unknown", "missing"])
def test_an_unknown_plugin_lists_the_available_ones(settings: dict[str, str]) -> None:
    plugins = {name: BackendPlugin(name, memory_factory) for name in ("memory", "local")}

    with pytest.raises(ConfigurationError, match="available: local, memory") as raised:
        create_backend("archive", settings, plugins, CONTEXT)
    assert "backend 'archive'" in raised.value.message
    assert raised.value.details == {"key": "backends.archive.plugin"}


@pytest.mark.parametrize("module", ["no_such_sdk_x9", "no_such_sdk_x9.secrets"])
def test_a_missing_sdk_is_reported_with_the_extra_to_install(module: str) -> None:
    plugins = {"aws": BackendPlugin("aws", memory_factory, requires=(module,), extra="aws")}

    with pytest.raises(ConfigurationError) as raised:
        create_backend("aws-prod", {"plugin": "aws"}, plugins, CONTEXT)
    assert raised.value.message == (
        f"backend 'aws-prod' needs the Python package {module}: "
        "pip install 'secret-management[aws]'"
    )
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_a_missing_sdk_without_an_extra_is_still_named() -> None:
    plugins = {"x": BackendPlugin("x", memory_factory, requires=("json", "no_such_sdk_x9"))}

    with pytest.raises(ConfigurationError, match=re.escape("package no_such_sdk_x9: install")):
        create_backend("x1", {"plugin": "x"}, plugins, CONTEXT)


def test_the_local_backend_refuses_settings_it_does_not_know() -> None:
    plugins = backend_plugins(build_plugin_manager())

    with pytest.raises(ConfigurationError, match="unknown settings path"):
        create_backend("local", {"plugin": "local", "path": "/tmp/x"}, plugins, CONTEXT)


class TypeAndFormatCopycat:
    """A third-party plugin whose secret type and format reuse built-in names."""

    @hookimpl
    def secret_management_register_secret_types(self) -> list[SecretType]:
        return [AnyValueType("generic")]

    @hookimpl
    def secret_management_register_formats(self) -> list[SecretFormat]:
        return [RecordsFormat(), DotenvFormat()]


def test_duplicate_secret_type_and_format_names_are_refused_naming_both_plugins() -> None:
    manager = build_plugin_manager()
    manager.register(TypeAndFormatCopycat(), name="copycat")

    with pytest.raises(ConfigurationError, match="SecretType named 'generic'") as types:
        secret_type_plugins(manager)
    with pytest.raises(ConfigurationError, match="SecretFormat named 'dotenv'") as formats:
        format_plugins(manager)
    assert "'types_basic'" in types.value.message and "'copycat'" in types.value.message
    assert "'format_dotenv'" in formats.value.message


def test_a_blocked_format_or_type_plugin_contributes_nothing() -> None:
    manager = build_plugin_manager(blocked=["format_dotenv", "types_keys"])

    assert set(format_plugins(manager)) == {"json", "json-flat"}
    assert {"certificate", "ssh_key"}.isdisjoint(secret_type_plugins(manager))
    assert "generic" in secret_type_plugins(manager)
