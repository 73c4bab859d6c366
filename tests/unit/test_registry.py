"""The generic registry (`core.registry.Registry`) and the lookups built on it: an unknown name
is refused naming the names there are, with the error and field each lookup always gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.backends import BackendRegistry
from core.domain.errors import ConfigurationError, InvalidInput, NotFound
from core.registry import Registry
from core.types import TypeRegistry
from entrypoints.config import load_settings
from entrypoints.factories import build_key_provider, open_audit_sinks
from plugins.manager import backend_plugins, build_plugin_manager, create_backend
from ports.storage import BackendContext
from tests.fakes import InMemoryBackend, fake_secret_types


def test_an_item_is_found_by_its_name_and_names_are_sorted() -> None:
    registry = Registry("colour", {"red": 1, "blue": 2})
    registry.register("green", 3)

    assert registry.get("green") == 3
    assert registry.names() == ["blue", "green", "red"]
    assert list(registry) == [1, 2, 3]
    assert "red" in registry and "pink" not in registry and len(registry) == 3


def test_an_unknown_name_is_invalid_input_naming_the_known_ones() -> None:
    registry = Registry("colour", {"red": 1, "blue": 2}, details={"field": "colour"})

    with pytest.raises(InvalidInput) as raised:
        registry.get("pink")

    assert raised.value.message == "unknown colour 'pink'; known: blue, red"
    assert raised.value.details == {"field": "colour"}


def test_the_word_before_the_names_and_the_error_can_be_chosen() -> None:
    registry: Registry[int] = Registry(
        "sink", {}, listed_as="available", refuse=lambda message: NotFound(message)
    )

    with pytest.raises(NotFound, match=r"^unknown sink 'x'; available: none$"):
        registry.get("x")


def test_a_name_that_is_not_a_string_is_refused_not_a_crash() -> None:
    registry = Registry("format", {"json": 1})

    with pytest.raises(InvalidInput, match=r"unknown format '\['json'\]'"):
        registry.get(["json"])  # type: ignore[arg-type]


def test_a_name_registered_twice_is_refused() -> None:
    registry = Registry("rotator", {"random": 1})

    with pytest.raises(ConfigurationError, match="two rotators are named 'random'"):
        registry.register("random", 2)
    assert registry.get("random") == 1


def test_the_backend_and_type_lookups_keep_their_messages_and_fields() -> None:
    backends = BackendRegistry({"b": InMemoryBackend("b"), "a": InMemoryBackend("a")}, "a")
    with pytest.raises(InvalidInput) as raised:
        backends.get("nope")
    assert raised.value.message == "unknown backend 'nope'; configured: a, b"
    assert raised.value.details == {"field": "backend"}

    types = TypeRegistry(fake_secret_types())
    with pytest.raises(InvalidInput) as refused:
        types.require("nope")
    assert refused.value.message.startswith("unknown secret type 'nope'; known: ")
    assert refused.value.details == {"field": "type"}


def test_the_key_provider_and_audit_sink_lookups_keep_their_messages(tmp_path: Path) -> None:
    manager = build_plugin_manager()
    settings = load_settings({"SECRETS_KEYS__PROVIDER": "kms", "SECRETS_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigurationError) as provider:
        build_key_provider(settings, manager, {})
    assert provider.value.message == (
        "configuration key 'keys.provider': unknown key provider 'kms'; available: auto, env, file"
    )

    settings = load_settings(
        {"SECRETS_AUDIT__SINKS": "stdout,syslog", "SECRETS_DATA_DIR": str(tmp_path)}
    )
    with pytest.raises(ConfigurationError) as sink:
        next(open_audit_sinks(settings, manager))
    assert sink.value.message == (
        "configuration key 'audit.sinks': unknown sink 'syslog'; available: file, stdout"
    )
    assert sink.value.details == {"key": "audit.sinks"}


@pytest.mark.parametrize(
    ("settings", "shown"), [({"plugin": "s3"}, "'s3'"), ({}, "'None'"), ({"plugin": [1]}, "'[1]'")]
)
def test_an_unknown_backend_plugin_is_a_configuration_error_naming_the_key(
    settings: dict[str, object], shown: str
) -> None:
    plugins = backend_plugins(build_plugin_manager())
    with pytest.raises(ConfigurationError) as raised:
        create_backend("prod", settings, plugins, BackendContext(None, None))
    assert raised.value.message == (
        f"backend 'prod': unknown plugin {shown}; available: {', '.join(sorted(plugins))}"
    )
    assert raised.value.details == {"key": "backends.prod.plugin"}
