"""The built-in rotators as plugins (the webhook one knows only the targets configured for
it), and the random value generator."""

from __future__ import annotations

import string

import pytest

import plugins.rotators
from core.domain.errors import ConfigurationError, InvalidInput
from core.domain.values import ScopeRef, ScopeType
from plugins import hookimpl
from plugins.manager import build_plugin_manager, rotator_plugins
from plugins.rotators import RandomRotator
from ports.rotation import RotatorContext, RotatorPlugin
from ports.webhooks import WebhookTarget

ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")


def test_the_built_in_rotators_are_plugins_found_through_their_entry_point() -> None:
    manager = build_plugin_manager()
    found = rotator_plugins(manager)
    assert manager.get_plugin("rotators") is plugins.rotators
    assert {"random", "webhook"} <= set(found)
    assert found["webhook"].factory(RotatorContext(environ={})).name == "webhook"
    assert "rotators" not in {p for p in rotator_plugins(build_plugin_manager(["rotators"]))}


def test_the_webhook_rotator_calls_out_to_the_targets_the_host_configured_only() -> None:
    """Its settings name a target of the context; the environment is never consulted."""
    found = rotator_plugins(build_plugin_manager())
    target = WebhookTarget("db", "https://db.example.com/rotate", b"k" * 32, scopes=(ACME,))
    context = RotatorContext(environ={"SECRETS_DEV_ROOT_TOKEN": "r" * 32}, webhooks={"db": target})
    webhook, random = found["webhook"].factory(context), found["random"].factory(context)

    assert (webhook.calls_out, random.calls_out) == (True, False)
    webhook.check_settings({"target": "db", "length": 40})
    assert webhook.scopes_served({"target": "db"}) == (ACME,)
    assert random.scopes_served({}) is None  # any scope
    with pytest.raises(InvalidInput, match="'SECRETS_DEV_ROOT_TOKEN' is not configured") as refused:
        webhook.check_settings({"target": "SECRETS_DEV_ROOT_TOKEN"})
    assert refused.value.details == {"field": "settings.target", "configured": ["db"]}
    with pytest.raises(InvalidInput, match="target 'db' is not configured") as unconfigured:
        found["webhook"].factory(RotatorContext(environ={})).check_settings({"target": "db"})
    assert unconfigured.value.details["configured"] == []


def test_a_duplicate_rotator_name_is_refused() -> None:
    class Copycat:
        @hookimpl
        def secret_management_register_rotators(self) -> list[RotatorPlugin]:
            return [RotatorPlugin("random", lambda context: RandomRotator())]

    manager = build_plugin_manager()
    manager.register(Copycat(), name="copycat")
    with pytest.raises(ConfigurationError, match="'rotators' and 'copycat'"):
        rotator_plugins(manager)


@pytest.mark.parametrize(
    ("settings", "length", "characters"),
    [
        ({}, 32, string.ascii_letters + string.digits),
        ({"length": 8, "alphabet": "hex"}, 8, "0123456789abcdef"),
        ({"length": 64, "alphabet": "urlsafe"}, 64, string.ascii_letters + string.digits + "-_"),
        ({"length": 4096, "alphabet": "printable"}, 4096, string.printable.strip()),
        ({"length": 20, "characters": "ab"}, 20, "ab"),
    ],
)
def test_random_values_have_the_length_and_characters_asked_for(
    settings: dict, length: int, characters: str
) -> None:
    rotator = RandomRotator()
    rotator.check_settings(settings)
    values = {rotator.generate(settings).reveal().decode() for _ in range(5)}
    assert len(values) == 5  # never the same twice
    for value in values:
        assert len(value) == length and set(value) <= set(characters)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"length": 7}, "settings.length"),
        ({"length": 4097}, "settings.length"),
        ({"length": "32"}, "settings.length"),
        ({"length": True}, "settings.length"),
        ({"alphabet": "emoji"}, "settings.alphabet"),
        ({"characters": "aaaa"}, "settings.characters"),
        ({"characters": "ab", "alphabet": "hex"}, "settings.characters"),
        ({"url": "https://example.com"}, "settings.url"),
        ({"secret_env": "SECRETS_DEV_ROOT_TOKEN"}, "settings.secret_env"),
        ({"target": "db"}, "settings.target"),
        ({"password": "inline"}, "settings.password"),
    ],
)
def test_random_rotator_settings_are_checked(settings: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        RandomRotator().check_settings(settings)
    assert refused.value.details == {"field": field}
