"""The fields every input schema builds on (never marshmallow's plain String, Integer or
AwareDateTime) and the strict base schema: what they accept can be stored, compared and logged."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate

ENCODINGS = ("utf-8", "base64")


# What the columns behind the numbers a caller gives hold (adapters/db/tables.py): PostgreSQL's
# `integer` (versions, counts, seconds, pages) and `bigint` (audit sequence numbers).
INT32_MAX = 2**31 - 1


INT64_MAX = 2**63 - 1


QUERY_INTEGER = re.compile(r"-?[0-9]{1,20}")


MAX_JSON_DEPTH = 8


def writable(text: str) -> bool:
    """Whether `text` holds no NUL (PostgreSQL's text types cannot) and no unpaired surrogate
    (not UTF-8: no database, log line or JSON encoder downstream can write one)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """A string a caller gives; `allow_nul` for a secret's value, which is stored encrypted."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "unwritable": "must not contain NUL characters or unpaired surrogates",
        "unencodable": "must not contain unpaired surrogates",
    }

    def __init__(self, *, allow_nul: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_nul = allow_nul

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.allow_nul:
            if not writable(text.replace("\x00", "")):
                raise self.make_error("unencodable")
        elif not writable(text):
            raise self.make_error("unwritable")
        return text


class Integer(fields.Integer):
    """An integer in a JSON body: a JSON integer (not 1.9, 2.0, "2" or true) between `minimum`
    and `maximum`, by default what an `integer` column holds."""

    def __init__(self, *, minimum: int = 1, maximum: int = INT32_MAX, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(minimum, maximum), **kwargs)


class QueryInteger(Integer):
    """An integer in a query string: decimal digits with an optional minus sign only ("1.0",
    "+1", " 1", "1_000" and other scripts' digits are not integers here)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and QUERY_INTEGER.fullmatch(value):
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Timestamp(fields.AwareDateTime):
    """A date and time with its UTC offset (ISO 8601), loaded as UTC. A moment UTC cannot
    hold (9999-12-31T23:59:59-05:00, 0001-01-01T00:00:00+01:00) is refused."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "out_of_range": "is out of range once in UTC (years 1 to 9999)",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("out_of_range") from None


class FullMatch(validate.Regexp):
    """`validate.Regexp` on the whole string: its `match` lets "prod\\n" through `^[a-z]+$`."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def storable_json(value: Any) -> None:
    """A validator of free-form JSON (a rotator's settings): nested at most `MAX_JSON_DEPTH`
    deep, and its keys and strings `writable`."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            raise ValidationError(f"nested more than {MAX_JSON_DEPTH} deep")
        if isinstance(item, dict):
            if not all(writable(key) for key in item):
                raise ValidationError("keys must not contain NUL characters or unpaired surrogates")
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and not writable(item):
            raise ValidationError("must not contain NUL characters or unpaired surrogates")


class ValueText(Text):
    """A secret's value: text, or a JSON object (a typed secret's fields, as the type documents
    them), kept as its canonical JSON text: keys sorted, no spaces. Documented as either."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "not_json": "must be text or a JSON object without NaN or Infinity",
    }

    def __init__(self, **kwargs: Any) -> None:
        oneof = {"oneOf": [{"type": "string"}, {"type": "object"}]}
        super().__init__(metadata=oneof | kwargs.pop("metadata", {}), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            return super()._deserialize(value, attr, data, **kwargs)
        storable_json(value)
        try:
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            )
        except ValueError:
            raise self.make_error("not_json") from None


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


def isoformat_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
