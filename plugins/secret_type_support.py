"""What the built-in secret types share: a marshmallow schema of a value's fields, a text
shorthand for types with one main field, and environment variables named after the fields.

A structured value is a JSON object of the schema's fields. A type with a `text_field` also takes
plain text as that one field (an API key, a connection string, a PEM key). Problems name the
field and say why, in words of ours: marshmallow's messages never quote the input, and no other
message is passed on. Metadata never holds a credential: a URL field is reduced to its scheme,
host and port, since its user part, path and query can carry one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError
from marshmallow import fields as schema_fields

from core.domain.values import SecretValue
from ports.types import FieldProblem, SecretType, TypeCheck

Fields = dict[str, Any]


def value_text(value: SecretValue) -> str | None:
    """The value as text, or None when it is not UTF-8."""
    try:
        return value.reveal().decode("utf-8")
    except UnicodeDecodeError:
        return None


def schema_problems(error: ValidationError) -> tuple[FieldProblem, ...]:
    """marshmallow's messages as problems: the field's path and its first message."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    return tuple(_flatten(messages, ""))


def _flatten(messages: Mapping[Any, Any], prefix: str) -> list[FieldProblem]:
    problems = []
    for key, message in messages.items():
        name = (prefix.rstrip(".") or "value") if key == "_schema" else f"{prefix}{key}"
        if isinstance(message, Mapping):
            problems.extend(_flatten(message, f"{name}."))
        else:
            first = message[0] if isinstance(message, list) and message else message
            problems.append(FieldProblem(name, str(first)))
    return problems


def problem(field: str, reason: str) -> TypeCheck:
    return TypeCheck(problems=(FieldProblem(field, reason),))


def url_origin(text: str) -> str | None:
    """A URL's scheme, host and port; None if it has no host."""
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        return None
    if not url.scheme or not url.hostname:
        return None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{url.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def as_text(item: Any) -> str:
    if isinstance(item, datetime):
        return item.isoformat()
    if isinstance(item, dict | list):
        return json.dumps(item, separators=(",", ":"), sort_keys=True)
    return str(item)


class SchemaType(SecretType):
    """A type whose value is a JSON object of `schema`'s fields or, with a `text_field`, plain
    text taken as that field.

    Its non-sensitive fields are its derived metadata (a URL's origin only); `inspect` adds
    deeper checks. As
    environment variables each field is `<VARIABLE>_<FIELD>` (the text field is `<VARIABLE>`
    itself), unless `variables` gives it a conventional name (`AWS_ACCESS_KEY_ID`).
    """

    schema: ClassVar[type[Schema]]
    text_field: ClassVar[str | None] = None
    variables: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        declared = self.schema().fields
        self.fields = tuple(declared)
        self._url_fields = frozenset(
            name for name, field in declared.items() if isinstance(field, schema_fields.Url)
        )

    def validate(self, value: SecretValue) -> TypeCheck:
        loaded = self.load(value)
        if isinstance(loaded, TypeCheck):
            return loaded
        return self.inspect(loaded)

    def load(self, value: SecretValue) -> Fields | TypeCheck:
        """The value's fields, or the check that says why there are none."""
        text = value_text(value)
        if text is None:
            return problem("value", "is not UTF-8 text")
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                return problem("value", "is not valid JSON")
            except RecursionError:  # `{"a":{"a":…` deeper than the interpreter's stack
                return problem("value", "is nested too deeply")
        elif self.text_field is not None:
            data = {self.text_field: text}
        else:
            return problem("value", f"must be a JSON object of {', '.join(self.fields)}")
        if not isinstance(data, dict):
            return problem("value", "must be a JSON object")
        try:
            fields: Fields = self.schema().load(data)
        except ValidationError as error:
            return TypeCheck(problems=schema_problems(error))
        return fields

    def inspect(self, fields: Fields) -> TypeCheck:
        """Checks beyond the schema, and the metadata; by default the non-sensitive fields."""
        return TypeCheck(metadata=self.public_fields(fields))

    def public_fields(self, fields: Fields) -> dict[str, str]:
        public = {
            name: url_origin(item) if name in self._url_fields else as_text(item)
            for name, item in fields.items()
            if name not in self.sensitive_fields and item not in (None, "")
        }
        return {name: text for name, text in public.items() if text}

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        fields = self.valid_fields(value)
        return {
            self.variable_of(variable, name): as_text(item)
            for name, item in fields.items()
            if item is not None
        }

    def valid_fields(self, value: SecretValue) -> Fields:
        """The fields of a value that passes every check (`inspect` too: a certificate's key
        must match it); ValueError, not quoting it, for any other."""
        fields = self.load(value)
        if isinstance(fields, TypeCheck) or not self.inspect(fields).valid:
            raise ValueError(f"the value is not a valid {self.name}")
        return fields

    def variable_of(self, variable: str, field: str) -> str:
        if field in self.variables:
            return self.variables[field]
        if field == self.text_field:
            return variable
        return f"{variable}_{field.upper()}"
