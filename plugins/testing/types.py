"""The secret type contract: cases every `ports.types.SecretType` passes.

Subclass `SecretTypeContract` and give it three fixtures: `secret_type`, `valid_value` (a value
the type accepts) and `invalid_value` (one it refuses; None for a type that accepts any value)::

    from plugins.testing import SecretTypeContract

    class TestJwtType(SecretTypeContract):
        @pytest.fixture
        def secret_type(self):
            return JwtType()

        @pytest.fixture
        def valid_value(self):
            return SecretValue.from_text(make_test_jwt())

        @pytest.fixture
        def invalid_value(self):
            return SecretValue.from_text("not.a-jwt")

The sensitive parts of a value are the values of its `sensitive_fields` when it is a JSON
object, and the whole value otherwise; override `sensitive_parts` to name others. The rules:

- The type declares a name; its `sensitive_fields` are among its `fields` (when it names any).
- `validate` returns problems, never raises, whatever the bytes; a problem names a field and a
  reason, and never quotes a sensitive part of the value.
- The metadata of a valid value is text and holds no sensitive part; its expiry is aware.
- `environment` of a valid value gives variable names `[A-Za-z_][A-Za-z0-9_]*` and text values
  without NUL; of a value that is not valid, it raises `ValueError` without quoting it.
"""

from __future__ import annotations

import json
import re

import pytest

from core.domain.values import SecretValue
from plugins.testing.leaks import assert_not_leaked
from ports.types import SecretType, TypeCheck

VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOSTILE_VALUES = {
    "empty": b"",
    "not-utf8": b"\xff\xfe\x00\x80",
    "nul": b"\x00" * 16,
    "json-array": b"[1, 2, 3]",
    "json-null": b"null",
    "json-number": b"42",
    "json-nested": b'{"a": {"b": {"c": [null]}}}',
    "deep-json": b"[" * 5000,
    "deeper-json": b'{"a":' * 10_000,  # past the interpreter's recursion limit
    "pem-headers": b"-----BEGIN CERTIFICATE-----\n" * 2000,  # begins without an end
    "largest": b"x" * 64 * 1024,  # the service's default `max_value_bytes`
    "pem-garbage": b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
}


def sensitive_parts_of(secret_type: SecretType, value: SecretValue) -> list[str]:
    """The sensitive fields' texts of a JSON object value, else the whole value's text."""
    try:
        text = value.reveal().decode("utf-8")
    except UnicodeDecodeError:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return [text] if len(text) >= 4 else []
    if not isinstance(document, dict):
        return [text] if len(text) >= 4 else []
    return [
        str(document[name])
        for name in secret_type.sensitive_fields
        if name in document and len(str(document[name])) >= 4
    ]


class SecretTypeContract:
    """The contract cases. A subclass provides `secret_type`, `valid_value`, `invalid_value`."""

    @pytest.fixture
    def secret_type(self) -> SecretType:
        raise NotImplementedError("a SecretTypeContract subclass provides `secret_type`")

    @pytest.fixture
    def valid_value(self) -> SecretValue:
        raise NotImplementedError("a SecretTypeContract subclass provides `valid_value`")

    @pytest.fixture
    def invalid_value(self) -> SecretValue | None:
        raise NotImplementedError("a SecretTypeContract subclass provides `invalid_value`")

    @pytest.fixture
    def sensitive_parts(self, secret_type: SecretType, valid_value: SecretValue) -> list[str]:
        return sensitive_parts_of(secret_type, valid_value)

    def test_it_declares_a_name_and_its_sensitive_fields_among_its_fields(
        self, secret_type: SecretType
    ) -> None:
        assert isinstance(secret_type.name, str) and secret_type.name
        assert isinstance(secret_type.sensitive_fields, frozenset)
        if secret_type.fields:
            assert secret_type.sensitive_fields <= set(secret_type.fields)

    def test_a_valid_value_passes_with_text_metadata_and_no_sensitive_part(
        self, secret_type: SecretType, valid_value: SecretValue, sensitive_parts: list[str]
    ) -> None:
        check = secret_type.validate(valid_value)
        assert isinstance(check, TypeCheck)
        assert check.valid, check.problems
        for key, shown in check.metadata.items():
            assert isinstance(key, str) and isinstance(shown, str), key
            for part in sensitive_parts:
                assert part not in shown, f"metadata '{key}' shows a sensitive part"
        if check.expires_at is not None:
            assert check.expires_at.tzinfo is not None, "an expiry is timezone-aware"

    def test_an_invalid_value_is_refused_naming_a_field_never_quoting_it(
        self, secret_type: SecretType, invalid_value: SecretValue | None
    ) -> None:
        if invalid_value is None:
            pytest.skip("the type accepts any value")
        check = secret_type.validate(invalid_value)
        assert not check.valid, "the invalid value passed"
        parts = sensitive_parts_of(secret_type, invalid_value)
        for problem in check.problems:
            assert isinstance(problem.field, str) and problem.field
            assert isinstance(problem.reason, str) and problem.reason
            for part in parts:
                assert part not in problem.reason, f"the reason for '{problem.field}' quotes it"

    @pytest.mark.parametrize("raw", HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
    def test_validate_returns_problems_and_never_raises(
        self, secret_type: SecretType, raw: bytes
    ) -> None:
        check = secret_type.validate(SecretValue(raw))
        assert isinstance(check, TypeCheck)
        for problem in check.problems:
            assert isinstance(problem.field, str) and isinstance(problem.reason, str)

    def test_a_valid_value_renders_as_environment_variables(
        self, secret_type: SecretType, valid_value: SecretValue
    ) -> None:
        rendered = secret_type.environment("CONTRACT_VALUE", valid_value)
        assert rendered, "a valid value gives at least one variable"
        for name, text in rendered.items():
            assert VARIABLE.fullmatch(name), f"'{name}' is not a variable name"
            assert isinstance(text, str) and "\x00" not in text, name

    def test_a_value_that_is_not_valid_has_no_variables_and_is_not_quoted(
        self, secret_type: SecretType, invalid_value: SecretValue | None
    ) -> None:
        values = [SecretValue(b"\xff\xfe\x00 not text")]
        if invalid_value is not None:
            values.append(invalid_value)
        for value in values:
            if secret_type.validate(value).valid and b"\x00" not in value.reveal():
                continue
            with pytest.raises(ValueError) as raised:
                secret_type.environment("CONTRACT_VALUE", value)
            for part in sensitive_parts_of(secret_type, value):
                assert_not_leaked(raised.value, part)
