"""Schemas of imports and exports, formats and secret types."""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from core.domain.values import ScopeType
from core.policy import ENVIRONMENT_PATTERN
from core.transfer_requests import (
    ConflictStrategy,
    ImportAction,
)
from entrypoints.http.schemas.fields import FullMatch, StrictSchema, Text
from entrypoints.http.schemas.scopes import ScopeRefSchema


class ImportFormSchema(StrictSchema):
    file = Upload(required=True, metadata={"description": "The file to import."})
    scope_type = Text(required=True, validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text(validate=validate.Length(1, 128))
    parent_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    parent_id = Text(validate=validate.Length(1, 128))
    environment = Text(validate=validate.Length(1, 64))
    format = Text(
        validate=validate.Length(1, 64),
        metadata={"description": "dotenv, json, json-flat…; guessed from the file name if absent."},
    )
    strategy = fields.Enum(ConflictStrategy, by_value=True, load_default=ConflictStrategy.SKIP)
    dry_run = fields.Boolean(load_default=False)
    backend = Text(validate=validate.Length(1, 64))
    passphrase = Text(
        load_only=True, metadata={"description": "Opens a sealed file (never logged)."}
    )


class ImportItemSchema(Schema):
    class Meta:
        ordered = True

    line = fields.Integer()
    name = fields.String()
    action = fields.Enum(ImportAction, by_value=True)
    secret_id = fields.UUID(allow_none=True)
    version = fields.Integer(allow_none=True)
    reason = fields.String()


class EntryErrorSchema(Schema):
    class Meta:
        ordered = True

    line = fields.Integer()
    name = fields.String(allow_none=True)
    field = fields.String(allow_none=True)
    message = fields.String()


class ImportReportSchema(Schema):
    class Meta:
        ordered = True

    format = fields.String()
    strategy = fields.Enum(ConflictStrategy, by_value=True)
    dry_run = fields.Boolean()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    items = fields.List(fields.Nested(ImportItemSchema))
    errors = fields.List(fields.Nested(EntryErrorSchema))


class ExportArgsSchema(StrictSchema):
    scope = fields.Nested(ScopeRefSchema, required=True)
    # As a secret's environment must be: it also names the file (Content-Disposition).
    environment = Text(
        allow_none=True,
        load_default=None,
        validate=FullMatch(ENVIRONMENT_PATTERN, error="must match {regex}"),
    )
    format = Text(load_default="json", validate=validate.Length(1, 64))
    include_values = fields.Boolean(load_default=False)
    include_versions = fields.Boolean(load_default=False)
    passphrase = Text(
        load_only=True,
        allow_none=True,
        load_default=None,
        metadata={"description": "Seals the file (scrypt + AES-256-GCM); never logged."},
    )


class FormatSchema(Schema):
    name = fields.String()
    description = fields.String()
    media_type = fields.String()
    extensions = fields.List(fields.String())
    carries_metadata = fields.Boolean()


class SecretTypeSchema(Schema):
    name = fields.String()
    description = fields.String()
    fields_ = fields.List(fields.String(), attribute="fields", data_key="fields")
    sensitive_fields = fields.Function(lambda t: sorted(t.sensitive_fields))


class FormatListSchema(Schema):
    items = fields.List(fields.Nested(FormatSchema))


class SecretTypeListSchema(Schema):
    items = fields.List(fields.Nested(SecretTypeSchema))
