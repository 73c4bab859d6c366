"""The JSON formats: `json-flat`, a flat `{"NAME": "value"}` map, and `json`, a full-fidelity
document with each secret's metadata, type, tags, expiry and, optionally, every version.

The full document (schema version 1):

    {"format": "secret-management-export", "schema_version": 1, "exported_at": "…",
     "scope": {"type": "project", "id": "p-42"}, "environment": null,
     "includes_values": true, "includes_versions": false,
     "secrets": [{"name": "…", "type": "…", "description": "…", "tags": {…}, "consumer": "…",
                  "expires_at": null, "not_before": null, "max_versions": null,
                  "current_version": 3, "created_at": "…", "created_by": "…",
                  "updated_at": "…", "updated_by": "…",
                  "value": "…", "encoding": "utf-8",          # with values
                  "value_unavailable": "secret_expired",       # …when one is left out
                  "versions": [{"version": 1, "state": "enabled", "created_at": "…",
                                "created_by": "…", "expires_at": null,
                                "value": "…", "encoding": "base64"}]}]}   # with versions

Both formats read either shape. Import takes a secret's older versions with values, oldest
first, as the history of a new secret. Errors name the line of the secret (or member) at fault.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from core.domain.secrets import CONSUMERS
from core.domain.values import SecretValue
from plugins.hookspecs import hookimpl
from plugins.secret_type_support import schema_problems
from ports.formats import (
    EntryError,
    ExportDocument,
    ExportedVersion,
    ExportEntry,
    ImportEntry,
    SecretFormat,
)

DOCUMENT_FORMAT = "secret-management-export"
SCHEMA_VERSION = 1
WHITESPACE = re.compile(r"[ \t\n\r]*")


class _VersionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    version = fields.Integer(required=True, validate=validate.Range(min=1))
    value = fields.String(allow_none=True)
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(["utf-8", "base64"]))


class _SecretSchema(Schema):
    """A secret of the full document. What import does not take (who created it, when) is
    left out; unknown members are ignored, so later schema versions stay readable."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True)
    type = fields.String(validate=validate.Length(1, 64))
    description = fields.String()
    tags = fields.Dict(keys=fields.String(), values=fields.String())
    consumer = fields.String(validate=validate.OneOf(CONSUMERS))
    expires_at = fields.AwareDateTime(allow_none=True)
    not_before = fields.AwareDateTime(allow_none=True)
    max_versions = fields.Integer(allow_none=True)
    current_version = fields.Integer(validate=validate.Range(min=1))
    value = fields.String(allow_none=True)
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(["utf-8", "base64"]))
    versions = fields.List(fields.Nested(_VersionSchema))


class JsonFormat(SecretFormat):
    extensions = (".json",)
    media_type = "application/json"

    def __init__(self, full: bool) -> None:
        self.full = full
        self.name = "json" if full else "json-flat"
        self.description = (
            "a JSON document with each secret's metadata and, optionally, every version"
            if full
            else 'a flat JSON map {"NAME": "value"}'
        )
        self.carries_metadata = self.binary_values = full

    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        text = io.TextIOWrapper(stream, encoding="utf-8")
        try:
            reader = _Reader(text.read())
        except UnicodeDecodeError:
            yield EntryError(1, "the file is not UTF-8 text")
            return
        finally:
            text.detach()  # the caller's stream stays open
        try:
            members = list(reader.members())
        except json.JSONDecodeError as error:  # its message names a place, never the text
            yield EntryError(error.lineno, f"is not valid JSON: {error.msg}")
            return
        document = {key: item for key, _, item in members}
        if document.get("format") == DOCUMENT_FORMAT:
            yield from _document_entries(document, members)
        else:
            yield from _flat_entries(members)

    def render(self, document: ExportDocument) -> bytes:
        if self.full:
            body: Any = _document(document)
        else:
            body = {
                entry.secret.name: entry.value.reveal().decode("utf-8")
                for entry in document.entries
                if entry.value is not None
            }
        return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class _Reader:
    """Reads a JSON object member by member, keeping the line where each starts — and, for
    the document's `secrets` array, where each element starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self._line = 1
        self._counted = 0
        self._decoder = json.JSONDecoder()

    def line(self) -> int:
        self._line += self.text.count("\n", self._counted, self.position)
        self._counted = self.position
        return self._line

    def members(self) -> Iterator[tuple[str, int, Any]]:
        """(key, line, value) of the top-level object's members; `secrets` as a list of
        (line, element) pairs."""
        self._expect("{")
        while self._peek() != "}":
            if self._peek() != '"':
                raise self._error("Expecting property name enclosed in double quotes")
            line = self.line()
            key = self._value()
            self._expect(":")
            if key == "secrets" and self._peek() == "[":
                yield key, line, list(self._elements())
            else:
                yield key, line, self._value()
            if self._peek() != "}":
                self._expect(",")
                if self._peek() == "}":
                    raise self._error("Expecting property name enclosed in double quotes")
        self.position += 1
        if self._peek():
            raise self._error("Extra data")

    def _elements(self) -> Iterator[tuple[int, Any]]:
        self._expect("[")
        while self._peek() != "]":
            line = self.line()
            yield line, self._value()
            if self._peek() != "]":
                self._expect(",")
        self.position += 1

    def _skip(self) -> None:
        match = WHITESPACE.match(self.text, self.position)
        self.position = match.end() if match else self.position

    def _peek(self) -> str:
        self._skip()
        return self.text[self.position : self.position + 1]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise self._error(f"Expecting '{char}'")
        self.position += 1

    def _value(self) -> Any:
        self._skip()
        try:
            value, self.position = self._decoder.raw_decode(self.text, self.position)
        except RecursionError:  # arrays or objects nested past the interpreter's stack
            raise self._error("Nested too deeply") from None
        return value

    def _error(self, message: str) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, self.position)


def _flat_entries(members: list[tuple[str, int, Any]]) -> Iterator[ImportEntry | EntryError]:
    for name, line, item in members:
        if isinstance(item, str):
            yield ImportEntry(line=line, name=name, value=SecretValue.from_text(item))
        else:
            yield EntryError(line, "the value must be a string", name=name, field="value")


def _document_entries(
    document: dict[str, Any], members: list[tuple[str, int, Any]]
) -> Iterator[ImportEntry | EntryError]:
    lines = {key: line for key, line, _ in members}
    if document.get("schema_version") != SCHEMA_VERSION:
        line = lines.get("schema_version", 1)
        yield EntryError(line, f"schema_version must be {SCHEMA_VERSION}", field="schema_version")
        return
    secrets = document.get("secrets")
    if not isinstance(secrets, list):
        yield EntryError(lines.get("secrets", 1), "secrets must be a list", field="secrets")
        return
    for line, item in secrets:
        yield _document_entry(line, item)


def _document_entry(line: int, item: Any) -> ImportEntry | EntryError:
    name = item.get("name") if isinstance(item, dict) else None
    try:
        data = _SecretSchema().load(item)
        value = _decoded(data.get("value"), data["encoding"])
        older = [
            version
            for version in data.get("versions", [])
            if version["version"] < data.get("current_version", 0)
            and version.get("value") is not None
        ]
        history = tuple(
            _decoded(version["value"], version["encoding"])
            for version in sorted(older, key=lambda version: version["version"])
        )
    except ValidationError as error:
        problem = schema_problems(error)[0]
        return EntryError(line, f"{problem.field}: {problem.reason}", name, problem.field)
    except ValueError:
        return EntryError(line, "a value is not valid base64", name, "value")
    return ImportEntry(
        line=line,
        name=data["name"],
        value=value,
        history=tuple(value for value in history if value is not None),
        type=data.get("type"),
        description=data.get("description"),
        tags=data.get("tags"),
        consumer=data.get("consumer"),
        expires_at=data.get("expires_at"),
        not_before=data.get("not_before"),
        max_versions=data.get("max_versions"),
    )


def _decoded(text: str | None, encoding: str) -> SecretValue | None:
    if text is None:
        return None
    if encoding == "base64":
        try:
            return SecretValue(base64.b64decode(text, validate=True))
        except binascii.Error:
            raise ValueError("not base64") from None
    return SecretValue.from_text(text)


def _document(document: ExportDocument) -> dict[str, Any]:
    return {
        "format": DOCUMENT_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "exported_at": document.exported_at.isoformat(),
        "scope": {"type": document.scope.type.value, "id": document.scope.id},
        "environment": document.environment,
        "includes_values": document.includes_values,
        "includes_versions": document.includes_versions,
        "secrets": [_secret(entry, document) for entry in document.entries],
    }


def _secret(entry: ExportEntry, document: ExportDocument) -> dict[str, Any]:
    secret = entry.secret
    item: dict[str, Any] = {
        "name": secret.name,
        "type": secret.type,
        "description": secret.description,
        "tags": dict(sorted(secret.tags.items())),
        "consumer": secret.consumer,
        "expires_at": _time(secret.expires_at),
        "not_before": _time(secret.not_before),
        "max_versions": secret.max_versions,
        "current_version": secret.current_version,
        "created_at": _time(secret.created_at),
        "created_by": secret.created_by,
        "updated_at": _time(secret.updated_at),
        "updated_by": secret.updated_by,
    }
    if document.includes_values:
        item.update(_value(entry.value))
        if entry.value is None:
            item["value_unavailable"] = entry.unavailable
    if document.includes_versions:
        item["versions"] = [_version(version, document) for version in entry.versions]
    return item


def _version(version: ExportedVersion, document: ExportDocument) -> dict[str, Any]:
    record = version.record
    item: dict[str, Any] = {
        "version": record.version,
        "state": record.state.value,
        "created_at": _time(record.created_at),
        "created_by": record.created_by,
        "expires_at": _time(record.expires_at),
    }
    if document.includes_values:
        item.update(_value(version.value))
        if version.value is None:
            item["value_unavailable"] = version.unavailable
    return item


def _value(value: SecretValue | None) -> dict[str, Any]:
    if value is None:
        return {"value": None}
    raw = value.reveal()
    try:
        return {"value": raw.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}


def _time(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


@hookimpl
def secret_management_register_formats() -> list[SecretFormat]:
    return [JsonFormat(full=True), JsonFormat(full=False)]
