"""Schemas of scopes: a scope named in a request, a scope answered, the scopes API."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.domain.values import ScopeType
from entrypoints.http.schemas.common import PageArgsSchema, PageSchema
from entrypoints.http.schemas.fields import StrictSchema, Text


class ScopeRefSchema(StrictSchema):
    type = Text(
        required=True,
        validate=validate.OneOf([t.value for t in ScopeType]),
        metadata={"description": "global, organization, team, project or user"},
    )
    id = Text(
        validate=validate.Length(1, 128),
        metadata={"description": "The scope's external id; omitted (or 'global') for global."},
    )

    @validates_schema
    def _id_unless_global(self, data: dict[str, Any], **_: Any) -> None:
        if data["type"] != ScopeType.GLOBAL.value and not data.get("id"):
            raise ValidationError("required for every scope but global", "id")
        if data["type"] == ScopeType.GLOBAL.value and data.get("id", "global") != "global":
            raise ValidationError("the global scope's id is 'global'", "id")


class ScopeSchema(ScopeRefSchema):
    parent = fields.Nested(
        ScopeRefSchema,
        metadata={"description": "Creates the scope on first use below this parent."},
    )


class ScopeOutSchema(Schema):
    type = fields.Enum(ScopeType, by_value=True)
    id = fields.String()


class ScopeCreateSchema(ScopeRefSchema):
    parent = fields.Nested(ScopeRefSchema, required=True)


class ScopeItemSchema(Schema):
    class Meta:
        ordered = True

    type = fields.Function(
        lambda scope: scope.ref.type.value,
        metadata={"type": "string", "enum": [kind.value for kind in ScopeType]},
    )
    id = fields.Function(lambda scope: scope.ref.id, metadata={"type": "string"})
    parent = fields.Nested(
        ScopeOutSchema,
        allow_none=True,
        metadata={"description": "The scope it is below; null for the global scope."},
    )
    created_at = fields.DateTime(allow_none=True)


class ScopePageSchema(PageSchema):
    items = fields.List(fields.Nested(ScopeItemSchema))


class ScopeListArgsSchema(PageArgsSchema):
    type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
