"""The rotator contract: cases every `ports.rotation.Rotator` passes.

Subclass `RotatorContract` and give it a `rotator` fixture and a `settings` fixture (settings
it accepts; for a rotator that calls out, naming a target that accepts values, such as a local
test server)::

    from plugins.testing import RotatorContract

    class TestVaultTokenRotator(RotatorContract):
        @pytest.fixture
        def rotator(self):
            return VaultTokenRotator(...)

        @pytest.fixture
        def settings(self):
            return {"role": "ci"}

The rules it checks, besides the signatures of the port:

- Settings it does not understand (an unknown key, a value of the wrong type, a URL, a key file
  or an environment variable's name where a setting should be) are refused with core's
  `InvalidInput`, never another exception; the error names the key (in its message or
  details) and shows none of the value's text.
- `generate` makes a new value each time (two in a row differ) and never the settings' text.
- `scopes_served` is None or a collection of `ScopeRef`.
- `apply` is idempotent: applying the same pending value twice succeeds.
- No generated value reaches `repr(rotator)` or a log record.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from core.domain.errors import InvalidInput
from core.domain.values import ScopeRef
from plugins.testing.leaks import assert_not_leaked, assert_not_logged
from ports.rotation import RotationTarget, Rotator

UNKNOWN_KEY = "no_such_setting_for_the_contract"
WRONG_TYPES: tuple[Any, ...] = (None, [1, 2], {"nested": True}, 3.5, -1, "x" * 10_000)


def target() -> RotationTarget:
    return RotationTarget(uuid.uuid4(), "contract-secret", "project:contract", None, 2)


def names_key(error: InvalidInput, key: str) -> bool:
    return key in error.message or key in repr(error.details)


class RotatorContract:
    """The contract cases. A subclass provides the `rotator` and `settings` fixtures."""

    @pytest.fixture
    def rotator(self) -> Rotator:
        raise NotImplementedError("a RotatorContract subclass provides the `rotator` fixture")

    @pytest.fixture
    def settings(self) -> Mapping[str, Any]:
        raise NotImplementedError("a RotatorContract subclass provides the `settings` fixture")

    def test_it_declares_a_name_and_whether_it_calls_out(self, rotator: Rotator) -> None:
        assert isinstance(rotator.name, str) and rotator.name
        assert isinstance(rotator.calls_out, bool)

    def test_its_settings_are_accepted_and_make_a_new_value_each_time(
        self, rotator: Rotator, settings: Mapping[str, Any]
    ) -> None:
        rotator.check_settings(settings)
        first, second = rotator.generate(settings), rotator.generate(settings)
        assert first.reveal(), "a generated value is not empty"
        assert first.reveal() != second.reveal(), "two values in a row are the same"

    def test_an_unknown_setting_is_refused_naming_it(
        self, rotator: Rotator, settings: Mapping[str, Any]
    ) -> None:
        with pytest.raises(InvalidInput) as raised:
            rotator.check_settings({**settings, UNKNOWN_KEY: "x"})
        assert names_key(raised.value, UNKNOWN_KEY)

    @pytest.mark.parametrize("key", ["url", "secret_env", "secret_file", "key_file"])
    def test_a_url_key_file_or_variable_is_never_a_setting(
        self, rotator: Rotator, settings: Mapping[str, Any], key: str
    ) -> None:
        with pytest.raises(InvalidInput):
            rotator.check_settings({**settings, key: "https://attacker.example/collect"})

    @pytest.mark.parametrize("wrong", WRONG_TYPES, ids=lambda wrong: repr(wrong)[:16])
    def test_a_setting_of_the_wrong_type_is_invalid_input_not_a_crash(
        self, rotator: Rotator, settings: Mapping[str, Any], wrong: Any
    ) -> None:
        for key in settings:
            changed = {**settings, key: wrong}
            try:
                rotator.check_settings(changed)
            except InvalidInput as error:
                assert "x" * 100 not in error.message, "the error quotes the setting"
                continue
            rotator.generate(changed)  # accepted: it must then work

    def test_scopes_served_are_none_or_scope_refs(
        self, rotator: Rotator, settings: Mapping[str, Any]
    ) -> None:
        served = rotator.scopes_served(settings)
        assert served is None or all(isinstance(scope, ScopeRef) for scope in served)

    def test_apply_is_idempotent(self, rotator: Rotator, settings: Mapping[str, Any]) -> None:
        pending, value = target(), rotator.generate(settings)
        rotator.apply(pending, value, settings)
        rotator.apply(pending, value, settings)

    def test_no_value_reaches_a_repr_an_error_or_a_log_record(
        self, rotator: Rotator, settings: Mapping[str, Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        value = rotator.generate(settings)
        rotator.apply(target(), value, settings)
        text = value.reveal().decode("utf-8", "replace")
        assert text not in repr(rotator) and text not in repr(value)
        assert_not_logged(caplog.records, text)
        try:
            rotator.check_settings({**settings, UNKNOWN_KEY: text})
        except InvalidInput as error:
            assert_not_leaked(error, text)
