"""Every hook of `plugins/hookspecs.py`, as datasette holds its own: each has a docstring, an
entry in `docs/extending.md`, and a test that exercises it (`HOOK_TESTS` says which; a hook
added without one fails here). A third-party plugin implementing every hook is registered on
the built-in plugin manager, and what it contributes reaches the service's lookups."""

from __future__ import annotations

import inspect
import re
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import plugins.manager
from core.domain.errors import ConfigurationError
from core.domain.values import SecretValue, VersionKey
from entrypoints.config import load_settings
from entrypoints.factories import build_key_provider, open_audit_sinks
from plugins import hookspecs
from plugins.hookspecs import hookimpl
from plugins.manager import (
    audit_sink_plugins,
    backend_plugins,
    build_plugin_manager,
    create_backend,
    format_plugins,
    key_provider_plugins,
    rotator_plugins,
    secret_type_plugins,
)
from ports.audit import AuditSinkPlugin
from ports.formats import SecretFormat
from ports.rotation import RotatorContext, RotatorPlugin
from ports.security import KeyEncryptionKey, KeyProvider, KeyProviderContext, KeyProviderPlugin
from ports.storage import BackendContext, BackendPlugin, StorageBackend
from ports.types import SecretType
from tests.fakes import (
    AnyValueType,
    InMemoryBackend,
    RecordingSink,
    RecordsFormat,
    ScriptedRotator,
)

ROOT = Path(__file__).resolve().parents[2]
EXTENDING = ROOT / "docs" / "extending.md"

# Which test exercises which hook.
HOOK_TESTS = {
    "secret_management_register_backends": "test_a_plugin_contributes_a_backend_kind",
    "secret_management_register_key_providers": "test_a_plugin_contributes_a_key_provider",
    "secret_management_register_audit_sinks": "test_a_plugin_contributes_an_audit_sink",
    "secret_management_register_secret_types": "test_a_plugin_contributes_a_secret_type",
    "secret_management_register_formats": "test_a_plugin_contributes_a_format",
    "secret_management_register_rotators": "test_a_plugin_contributes_a_rotator",
}


def hook_names() -> list[str]:
    return sorted(
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith(f"{hookspecs.PROJECT}_")
    )


class StaticKeyProvider(KeyProvider):
    name = "static"

    def __init__(self) -> None:
        self._key = KeyEncryptionKey("static-1", bytes(range(32)))

    def active_key(self) -> KeyEncryptionKey:
        return self._key

    def key(self, key_id: str) -> KeyEncryptionKey:
        if key_id != self._key.id:
            raise ConfigurationError(f"no key '{key_id}'")
        return self._key

    def checksum_key(self) -> bytes:
        return bytes(range(32, 64))


class ClosingSink(RecordingSink):
    closed = False

    def close(self) -> None:
        self.closed = True


SINKS: list[ClosingSink] = []


def recording_sink(settings: Mapping[str, Any]) -> ClosingSink:
    sink = ClosingSink("third-party-sink")
    SINKS.append(sink)
    return sink


def memory_backend(
    name: str, settings: Mapping[str, Any], context: BackendContext
) -> StorageBackend:
    return InMemoryBackend(name)


class ThirdPartyPlugin:
    """One plugin implementing every hook, under names no built-in uses."""

    @hookimpl
    def secret_management_register_backends(self) -> list[BackendPlugin]:
        return [BackendPlugin("third-party-memory", memory_backend)]

    @hookimpl
    def secret_management_register_key_providers(self) -> list[KeyProviderPlugin]:
        return [KeyProviderPlugin("static", lambda settings, context: StaticKeyProvider())]

    @hookimpl
    def secret_management_register_audit_sinks(self) -> list[AuditSinkPlugin]:
        return [AuditSinkPlugin("third-party-sink", recording_sink)]

    @hookimpl
    def secret_management_register_secret_types(self) -> list[SecretType]:
        return [AnyValueType("third-party-type")]

    @hookimpl
    def secret_management_register_formats(self) -> list[SecretFormat]:
        return [RecordsFormat()]

    @hookimpl
    def secret_management_register_rotators(self) -> list[RotatorPlugin]:
        return [RotatorPlugin("third-party-rotator", lambda context: ScriptedRotator("tp"))]


@pytest.fixture
def manager() -> Any:
    manager = build_plugin_manager()
    manager.register(ThirdPartyPlugin(), name="third-party")
    manager.check_pending()
    return manager


# -- the meta-tests ---------------------------------------------------------------------------


def test_the_built_in_plugin_manager_has_no_implementation_without_a_spec() -> None:
    build_plugin_manager().check_pending()  # raises PluginValidationError otherwise


def test_every_hook_has_a_docstring() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 20, f"{name} has no docstring"


def test_every_hook_has_a_test_that_exercises_it() -> None:
    assert sorted(HOOK_TESTS) == hook_names(), "a hook without a test (or a test of no hook)"
    module = sys.modules[__name__]
    for hook, test_name in HOOK_TESTS.items():
        test = getattr(module, test_name, None)
        assert callable(test), f"{hook}: no test named {test_name}"
        # The test reads what the hook contributed through the manager's collector, which
        # calls the hook and nothing else.
        kind = hook.removeprefix(f"{hookspecs.PROJECT}_register_").removesuffix("s")
        collector = getattr(plugins.manager, f"{kind}_plugins")
        assert f"manager.hook.{hook}" in inspect.getsource(collector), collector.__name__
        assert f"{collector.__name__}(" in inspect.getsource(test), f"{test_name}: not {hook}"


def test_every_hook_is_documented_in_extending_md() -> None:
    text = EXTENDING.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `(\w+)`", text, flags=re.MULTILINE))
    assert headings == set(hook_names())


# -- one test per hook ------------------------------------------------------------------------


def test_a_plugin_contributes_a_backend_kind(manager: Any) -> None:
    plugins = backend_plugins(manager)
    assert {"local", "third-party-memory"} <= set(plugins)
    backend = create_backend(
        "mine",
        {"plugin": "third-party-memory"},
        plugins,
        BackendContext(database=None, key_provider=None),
    )
    key_locator = backend.put(VersionKey(uuid.uuid4(), 1), SecretValue(b"v"))
    assert isinstance(key_locator, str) and backend.name == "mine"


def test_a_plugin_contributes_a_key_provider(manager: Any, tmp_path: Path) -> None:
    assert {"auto", "env", "file", "static"} <= set(key_provider_plugins(manager))
    settings = load_settings(
        {"SECRETS_KEYS__PROVIDER": "static", "SECRETS_DATA_DIR": str(tmp_path)}
    )
    provider = build_key_provider(settings, manager, {})
    assert provider.active_key().id == "static-1"
    context = KeyProviderContext(str(tmp_path), {}, production=False)
    assert isinstance(key_provider_plugins(manager)["static"].factory({}, context), KeyProvider)


def test_a_plugin_contributes_an_audit_sink(manager: Any, tmp_path: Path) -> None:
    assert {"stdout", "file", "third-party-sink"} <= set(audit_sink_plugins(manager))
    settings = load_settings(
        {"SECRETS_AUDIT__SINKS": "third-party-sink", "SECRETS_DATA_DIR": str(tmp_path)}
    )
    SINKS.clear()
    opened = open_audit_sinks(settings, manager)
    sinks = next(opened)
    assert [sink.name for sink in sinks] == ["third-party-sink"] and sinks[0] is SINKS[0]
    next(opened, None)  # the generator ends: its `finally` closes the sinks
    assert SINKS[0].closed


def test_a_plugin_contributes_a_secret_type(manager: Any) -> None:
    types = secret_type_plugins(manager)
    assert {"generic", "certificate", "third-party-type"} <= set(types)
    assert types["third-party-type"].validate(SecretValue(b"x")).valid


def test_a_plugin_contributes_a_format(manager: Any) -> None:
    formats = format_plugins(manager)
    assert {"dotenv", "json", "records"} <= set(formats)


def test_a_plugin_contributes_a_rotator(manager: Any) -> None:
    rotators = rotator_plugins(manager)
    assert {"random", "webhook", "third-party-rotator"} <= set(rotators)
    rotator = rotators["third-party-rotator"].factory(RotatorContext(environ={}))
    assert rotator.name == "tp"
