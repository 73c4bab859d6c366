"""Schemas of access: role bindings, service accounts, tokens, readers, who am I."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.domain.access import Role
from core.domain.values import ScopeType
from entrypoints.http.schemas.common import PageArgsSchema, PageSchema
from entrypoints.http.schemas.fields import StrictSchema, Text, Timestamp
from entrypoints.http.schemas.scopes import ScopeOutSchema, ScopeRefSchema


class RoleBindingCreateSchema(StrictSchema):
    principal = Text(
        required=True, metadata={"description": "user:<id>, group:<id> or service:<name>"}
    )
    role = Text(required=True, validate=validate.OneOf([r.value for r in Role]))
    scope = fields.Nested(ScopeRefSchema, required=True)
    secret_id = fields.UUID(allow_none=True, load_default=None)
    name_pattern = Text(
        allow_none=True, load_default=None, metadata={"description": "a glob with * and ?"}
    )
    expires_at = Timestamp(allow_none=True, load_default=None)


class RoleBindingSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    principal = fields.String()
    role = fields.Enum(Role, by_value=True)
    scope = fields.Nested(ScopeOutSchema)
    secret_id = fields.UUID(allow_none=True)
    name_pattern = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String()
    expires_at = fields.DateTime(allow_none=True)


class RoleBindingPageSchema(PageSchema):
    items = fields.List(fields.Nested(RoleBindingSchema))


class RoleBindingListArgsSchema(PageArgsSchema):
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()
    principal = Text()


class ServiceAccountCreateSchema(StrictSchema):
    name = Text(required=True)
    scope = fields.Nested(ScopeRefSchema, required=True)
    description = Text(load_default="")


class ServiceAccountSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    name = fields.String()
    principal = fields.String()
    scope = fields.Nested(ScopeOutSchema)
    description = fields.String()
    created_at = fields.DateTime()
    created_by = fields.String()


class ServiceAccountPageSchema(PageSchema):
    items = fields.List(fields.Nested(ServiceAccountSchema))


class ServiceAccountListArgsSchema(PageArgsSchema):
    scope_type = Text(required=True, validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()


class TokenCreateSchema(StrictSchema):
    description = Text(load_default="")
    expires_at = Timestamp(allow_none=True, load_default=None)


class TokenSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    prefix = fields.String()
    description = fields.String()
    created_at = fields.DateTime()
    created_by = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema))


class IssuedTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "The token itself: shown this once only."})


class ReaderSchema(Schema):
    principal = fields.String()
    role = fields.Enum(Role, by_value=True, allow_none=True)
    via = fields.String()
    binding_id = fields.Function(lambda reader: str(reader.binding.id) if reader.binding else None)


class ReaderListSchema(Schema):
    items = fields.List(fields.Nested(ReaderSchema))


class WhoAmISchema(Schema):
    principal = fields.String()
    kind = fields.String()
    groups = fields.List(fields.String())
