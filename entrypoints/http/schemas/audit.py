"""Schemas of the audit trail and of the reports drawn from it."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.domain.values import ScopeType
from entrypoints.http.schemas.access import ServiceAccountSchema, TokenSchema
from entrypoints.http.schemas.fields import (
    INT64_MAX,
    Integer,
    QueryInteger,
    StrictSchema,
    Text,
    Timestamp,
)
from entrypoints.http.schemas.secrets import SecretSchema


class AuditQueryArgsSchema(StrictSchema):
    actor = Text()
    secret = fields.UUID(metadata={"description": "events about this secret"})
    resource = Text()
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()
    action = Text()
    outcome = Text(validate=validate.OneOf(["success", "denied", "not_found", "error"]))
    since = Timestamp()
    until = Timestamp()


class AuditEventsArgsSchema(AuditQueryArgsSchema):
    before_seq = QueryInteger(
        maximum=INT64_MAX, metadata={"description": "the cursor: next_cursor"}
    )
    limit = QueryInteger(load_default=100, maximum=1000)


class AuditExportArgsSchema(AuditQueryArgsSchema):
    format = Text(load_default="jsonl", validate=validate.OneOf(["jsonl", "csv"]))


class AuditEventSchema(Schema):
    class Meta:
        ordered = True

    seq = fields.Integer()
    time = fields.DateTime()
    request_id = fields.String(allow_none=True)
    actor = fields.String()
    actor_type = fields.String()
    source_ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    action = fields.String()
    resource = fields.String()
    scope = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    outcome = fields.String()
    reason = fields.String(allow_none=True)
    details = fields.Dict()
    prev_hash = fields.String()
    hash = fields.String()


class AuditEventPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema))
    next_cursor = fields.Integer(allow_none=True)


class AuditVerifyArgsSchema(StrictSchema):
    from_seq = Integer(maximum=INT64_MAX, load_default=None)
    to_seq = Integer(maximum=INT64_MAX, load_default=None)


class BrokenLinkSchema(Schema):
    seq = fields.Integer()
    problem = fields.String()


class AuditVerificationSchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer()
    first_seq = fields.Integer(allow_none=True)
    last_seq = fields.Integer(allow_none=True)
    broken = fields.Nested(BrokenLinkSchema, allow_none=True)


class ReportArgsSchema(StrictSchema):
    days = QueryInteger(load_default=30, minimum=0, maximum=3650)
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()


class SecretListSchema(Schema):
    items = fields.List(fields.Nested(SecretSchema))


class OverdueArgsSchema(StrictSchema):
    hours = QueryInteger(load_default=1, minimum=0, maximum=87600)
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()


class StaleTokenArgsSchema(StrictSchema):
    days = QueryInteger(load_default=90, minimum=0, maximum=3650)


class StaleTokenSchema(Schema):
    token = fields.Nested(TokenSchema)
    account = fields.Nested(ServiceAccountSchema)


class StaleTokenListSchema(Schema):
    items = fields.List(fields.Nested(StaleTokenSchema))
