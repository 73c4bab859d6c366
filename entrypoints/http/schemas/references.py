"""Schemas of references: reading the values that `secret://` references name."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from core.references import MAX_LENGTH as REFERENCE_MAX_LENGTH
from entrypoints.http.schemas.fields import ENCODINGS, StrictSchema, Text
from entrypoints.http.schemas.values import SecretValueSchema

MAX_REFERENCES = 100


class ReferenceText(Text):
    """A reference as given; parsed (and refused with 400) by `core.references`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=validate.Length(min=1, max=REFERENCE_MAX_LENGTH),
            metadata={"description": "secret://TYPE/ID/NAME[?env=E][&version=N|&stage=S]"},
            **kwargs,
        )


class ReferenceValueArgsSchema(StrictSchema):
    ref = ReferenceText(required=True)
    encoding = Text(
        validate=validate.OneOf(ENCODINGS),
        metadata={"description": "Force an encoding; by default UTF-8 text when it decodes."},
    )
    expand = fields.Boolean(
        load_default=False,
        metadata={"description": "Replace each `${secret://…}` with the value it names."},
    )


class JsonBoolean(fields.Boolean):
    """`true` or `false` in a JSON body, nothing that merely reads as one (`0`, `"yes"`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ReferenceValuesRequestSchema(StrictSchema):
    references = fields.List(
        ReferenceText(),
        required=True,
        validate=validate.Length(min=1, max=MAX_REFERENCES),
        metadata={"description": f"Up to {MAX_REFERENCES} references, answered in this order."},
    )
    expand = JsonBoolean(load_default=False)


class ReferenceValueSchema(SecretValueSchema):
    """A value read by reference: the answer of a value read, and the reference as asked."""

    reference = fields.String()

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if many or not isinstance(obj, dict):
            return super().dump(obj, many=many)
        return super().dump(obj) | {"reference": obj["reference"]}


class ReferenceErrorSchema(Schema):
    code = fields.String()
    message = fields.String()


class ReferenceValueItemSchema(Schema):
    class Meta:
        ordered = True

    reference = fields.String()
    secret_id = fields.UUID(metadata={"description": "Absent when the item is an error."})
    version = fields.Integer()
    value = fields.String()
    encoding = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    error = fields.Nested(
        ReferenceErrorSchema, metadata={"description": "Instead of a value: why there is none."}
    )


class ReferenceValuesSchema(Schema):
    items = fields.List(fields.Nested(ReferenceValueItemSchema))
