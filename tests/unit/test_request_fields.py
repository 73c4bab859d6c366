"""The fields every request schema is built of (`entrypoints/http/schemas/fields.py`), and a
meta-test that no schema a view loads uses marshmallow's plain ones, which let through what the
database, the log or the audit trail cannot hold (issue #14)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields

from entrypoints.http import app as _all_views  # noqa: F401 - imports every API module's schemas
from entrypoints.http.schemas import fields as request_fields

CHECKED = (
    request_fields.Text,
    request_fields.Integer,
    request_fields.Timestamp,
    fields.Boolean,
    fields.UUID,
)
CHECKED += (fields.Enum, Upload)


def unchecked_fields(schema: Schema, where: str) -> list[str]:
    """The fields of `schema` (nested ones included) that take input without our checks."""
    found: list[str] = []
    for name, field in schema.fields.items():
        found += unchecked(field, f"{where}.{name}")
    return found


def unchecked(field: fields.Field, where: str) -> list[str]:
    if isinstance(field, fields.Nested):
        return unchecked_fields(field.schema, where)
    if isinstance(field, fields.List):
        return unchecked(field.inner, f"{where}[]")
    if isinstance(field, fields.Dict):
        found = unchecked(field.key_field, f"{where}{{key}}") if field.key_field else [where]
        if field.value_field is not None:
            return found + unchecked(field.value_field, f"{where}{{value}}")
        return found if field.validators else [*found, f"{where}{{value}}"]
    return [] if isinstance(field, CHECKED) else [where]


def argument_schemas() -> list[Schema]:
    """The schema of every `blp.arguments` of every API module: what the views load."""
    found = []
    for name, module in sorted(sys.modules.items()):
        blueprint = getattr(module, "blp", None)
        if name.startswith("entrypoints.http.") and isinstance(blueprint, Blueprint):
            for methods in blueprint._docs.values():
                for doc in methods.values():
                    arguments = (doc or {}).get("arguments") or {}
                    found += [parameter["schema"] for parameter in arguments.get("parameters", [])]
    return found


def test_every_argument_schema_is_strict_and_built_of_checked_fields() -> None:
    loaded = argument_schemas()
    assert len(loaded) >= 30  # every module's views were found
    assert [
        type(s).__name__ for s in loaded if not isinstance(s, request_fields.StrictSchema)
    ] == []
    problems = [where for s in loaded for where in unchecked_fields(s, type(s).__name__)]
    assert problems == []


def test_the_meta_test_finds_plain_fields() -> None:
    class Careless(request_fields.StrictSchema):
        name = fields.String()
        count = fields.Integer()
        tags = fields.Dict(keys=fields.String(), values=request_fields.Text())
        anything = fields.Dict(keys=request_fields.Text())
        when = fields.List(fields.AwareDateTime())

    assert unchecked_fields(Careless(), "Careless") == [
        "Careless.name",
        "Careless.count",
        "Careless.tags{key}",
        "Careless.anything{value}",
        "Careless.when[]",
    ]


class Sample(request_fields.StrictSchema):
    text = request_fields.Text()
    value = request_fields.Text(allow_nul=True)
    number = request_fields.Integer()
    big = request_fields.Integer(minimum=0, maximum=request_fields.INT64_MAX)
    page = request_fields.QueryInteger()
    moment = request_fields.Timestamp()
    settings = fields.Dict(keys=request_fields.Text(), validate=request_fields.storable_json)


def load(**data: Any) -> dict[str, Any]:
    return Sample().load(data)  # type: ignore[no-any-return]


def refused(**data: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as refusal:
        load(**data)
    return refusal.value.messages  # type: ignore[return-value]


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "a\ud800", "\udfff", "\ud83d"])
def test_text_refuses_nul_and_lone_surrogates(text: str) -> None:
    assert list(refused(text=text)) == ["text"]


@pytest.mark.parametrize("text", ["", "plain", "café", "日本", "\U0001f600", "tab\there", "\ufeff"])
def test_text_takes_what_utf_8_holds(text: str) -> None:
    assert load(text=text)["text"] == text


def test_a_secret_value_may_hold_nul_but_not_a_lone_surrogate() -> None:
    assert load(value="a\x00b")["value"] == "a\x00b"
    assert refused(value="a\x00\ud800") == {"value": ["must not contain unpaired surrogates"]}


@pytest.mark.parametrize("number", [1.9, 2.0, "2", True, None, 2**31, 0, -1, float("nan")])
def test_body_integers_are_json_integers_within_the_column(number: Any) -> None:
    assert list(refused(number=number)) == ["number"]


def test_body_integers_take_their_range() -> None:
    assert load(number=1, big=0)["number"] == 1
    assert load(number=2**31 - 1, big=2**63 - 1)["big"] == 2**63 - 1
    assert list(refused(big=2**63)) == ["big"]


@pytest.mark.parametrize("text", ["1.0", "+1", " 1", "1 ", "1_000", "\u0661", "0x1", "1e3", ""])
def test_query_integers_are_decimal_digits(text: str) -> None:
    assert list(refused(page=text)) == ["page"]


def test_query_integers_take_digits_within_the_column() -> None:
    assert load(page="2147483647")["page"] == 2**31 - 1
    assert list(refused(page="2147483648")) == ["page"]
    assert list(refused(page="-1")) == ["page"]
    assert list(refused(page="9" * 5000)) == ["page"]


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "2025-01-01T00:00:00"]
)
def test_timestamps_refuse_what_utc_cannot_hold(moment: str) -> None:
    assert list(refused(moment=moment)) == ["moment"]


def test_timestamps_load_as_utc() -> None:
    loaded = load(moment="2025-06-01T12:00:00+02:00")["moment"]
    assert loaded == datetime(2025, 6, 1, 10, 0, tzinfo=UTC) and loaded.tzinfo is UTC
    assert load(moment="9999-12-31T23:59:59+00:00")["moment"].year == 9999


def test_free_form_json_is_bounded_in_depth_and_holds_writable_text() -> None:
    nested: Any = 1
    for _ in range(request_fields.MAX_JSON_DEPTH - 1):
        nested = [nested]
    assert load(settings={"a": nested})["settings"] == {"a": nested}
    assert list(refused(settings={"a": [nested]})) == ["settings"]
    assert list(refused(settings={"a": {"b\x00": 1}})) == ["settings"]
    assert list(refused(settings={"a": ["\ud800"]})) == ["settings"]
    assert list(refused(settings={"a\x00": 1})) == ["settings"]
