"""Schemas of secret values: the value a caller sends, the arguments of a read, the value
answered."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from entrypoints.http.schemas.fields import (
    ENCODINGS,
    QueryInteger,
    StrictSchema,
    Text,
    ValueText,
    isoformat_or_none,
)


class ValueInputMixin(Schema):
    value = ValueText(
        required=True,
        allow_nul=True,
        metadata={
            "description": "The secret value: UTF-8 text, base64 with `encoding`, or a JSON "
            "object of a typed secret's fields (stored as its JSON text)."
        },
    )
    encoding = Text(load_default="utf-8", validate=validate.OneOf(ENCODINGS))

    @validates_schema
    def _decodable(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("encoding") == "base64" and data.get("value") is not None:
            try:
                base64.b64decode(data["value"], validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError("not valid base64", "value") from None


class ValueArgsSchema(StrictSchema):
    version = QueryInteger()
    encoding = Text(
        validate=validate.OneOf(ENCODINGS),
        metadata={"description": "Force an encoding; by default UTF-8 text when it decodes."},
    )
    expand = fields.Boolean(
        load_default=False,
        metadata={"description": "Replace each `${secret://…}` with the value it names."},
    )


class PathArgsSchema(StrictSchema):
    environment = Text()


class PathValueArgsSchema(ValueArgsSchema):
    environment = Text()


class SecretValueSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    name = fields.String()
    version = fields.Integer()
    value = fields.String()
    encoding = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """The hot path's answer, field for field as the fields above write it (a test compares
        both), without marshmallow's per-field machinery."""
        if many or not isinstance(obj, dict):
            return super().dump(obj, many=many)
        return {
            "id": str(obj["id"]),
            "name": obj["name"],
            "version": obj["version"],
            "value": obj["value"],
            "encoding": obj["encoding"],
            "created_at": isoformat_or_none(obj["created_at"]),
            "expires_at": isoformat_or_none(obj["expires_at"]),
        }
