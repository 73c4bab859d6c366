"""The plugin manager: discovers plugins through entry points and builds backend instances."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

import pluggy

from core.domain.errors import ConfigurationError
from core.registry import Registry
from plugins import hookspecs
from ports.audit import AuditSinkPlugin
from ports.formats import SecretFormat
from ports.rotation import RotatorPlugin
from ports.security import KeyProviderPlugin
from ports.storage import BackendContext, BackendPlugin, StorageBackend
from ports.types import SecretType

Registration = TypeVar(
    "Registration",
    BackendPlugin,
    KeyProviderPlugin,
    AuditSinkPlugin,
    SecretType,
    SecretFormat,
    RotatorPlugin,
)


def build_plugin_manager(blocked: Iterable[str] = ()) -> pluggy.PluginManager:
    """Every plugin published under the `secret_management` entry-point group, except `blocked`."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in blocked:
        manager.set_blocked(name)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    manager.check_pending()
    return manager


def backend_plugins(manager: pluggy.PluginManager) -> dict[str, BackendPlugin]:
    return _collect(manager.hook.secret_management_register_backends, BackendPlugin)


def key_provider_plugins(manager: pluggy.PluginManager) -> dict[str, KeyProviderPlugin]:
    return _collect(manager.hook.secret_management_register_key_providers, KeyProviderPlugin)


def audit_sink_plugins(manager: pluggy.PluginManager) -> dict[str, AuditSinkPlugin]:
    return _collect(manager.hook.secret_management_register_audit_sinks, AuditSinkPlugin)


def secret_type_plugins(manager: pluggy.PluginManager) -> dict[str, SecretType]:
    return _collect(manager.hook.secret_management_register_secret_types, SecretType)


def format_plugins(manager: pluggy.PluginManager) -> dict[str, SecretFormat]:
    return _collect(manager.hook.secret_management_register_formats, SecretFormat)


def rotator_plugins(manager: pluggy.PluginManager) -> dict[str, RotatorPlugin]:
    return _collect(manager.hook.secret_management_register_rotators, RotatorPlugin)


def create_backend(
    instance_name: str,
    settings: Mapping[str, Any],
    plugins: Mapping[str, BackendPlugin],
    context: BackendContext,
) -> StorageBackend:
    """The backend instance `instance_name`, made by the plugin its `plugin` setting names."""
    kinds = Registry(
        "plugin",
        plugins,
        listed_as="available",
        refuse=lambda message: ConfigurationError(
            f"backend '{instance_name}': {message}",
            details={"key": f"backends.{instance_name}.plugin"},
        ),
    )
    plugin = kinds.get(str(settings.get("plugin")))
    missing = [module for module in plugin.requires if not _importable(module)]
    if missing:
        install = (
            f"pip install 'secret-management[{plugin.extra}]'"
            if plugin.extra
            else "install the package that provides it"
        )
        raise ConfigurationError(
            f"backend '{instance_name}' needs the Python package {', '.join(missing)}: {install}",
            details={"key": f"backends.{instance_name}.plugin"},
        )
    own_settings = {key: value for key, value in settings.items() if key != "plugin"}
    return plugin.factory(instance_name, own_settings, context)


def _collect(hook: pluggy.HookCaller, kind: type[Registration]) -> dict[str, Registration]:
    """Flatten a `register_*` hook's lists into one map by name, refusing duplicate names."""
    found: dict[str, Registration] = {}
    owners: dict[str, str] = {}
    for plugin_name, registration in _registrations(hook):
        if not isinstance(registration, kind):
            raise ConfigurationError(
                f"plugin '{plugin_name}' registered {registration!r}, not a {kind.__name__}"
            )
        if registration.name in found:
            raise ConfigurationError(
                f"plugins '{owners[registration.name]}' and '{plugin_name}' both register "
                f"a {kind.__name__} named '{registration.name}'; block one of them"
            )
        found[registration.name] = registration
        owners[registration.name] = plugin_name
    return found


def _registrations(hook: pluggy.HookCaller) -> Iterator[tuple[str, Any]]:
    # Implementations are called one by one, rather than through the hook, to know which
    # plugin contributed what. The `register_*` hooks take no arguments.
    for implementation in hook.get_hookimpls():
        registrations = cast("Iterable[Any] | None", implementation.function())
        for registration in registrations or ():
            yield implementation.plugin_name, registration


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        return False
