"""Schemas of versions and of the lifecycle: new versions, rollback, rotation, rotation policies."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.domain.secrets import Stage, VersionState
from entrypoints.http.schemas.fields import (
    Integer,
    StrictSchema,
    Text,
    Timestamp,
    ValueText,
    storable_json,
)
from entrypoints.http.schemas.values import ValueInputMixin


class VersionValidityMixin(Schema):
    expires_at = Timestamp(
        allow_none=True, load_default=None, metadata={"description": "This version expires."}
    )
    not_before = Timestamp(
        allow_none=True, load_default=None, metadata={"description": "Not served before."}
    )


class SecretVersionCreateSchema(ValueInputMixin, VersionValidityMixin, StrictSchema):
    pass


class VersionSchema(Schema):
    class Meta:
        ordered = True

    version = fields.Integer()
    state = fields.Enum(VersionState, by_value=True)
    stage = fields.Enum(
        Stage,
        by_value=True,
        allow_none=True,
        metadata={"description": "current, previous, pending"},
    )
    backend = fields.String()
    created_at = fields.DateTime()
    created_by = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    not_before = fields.DateTime(allow_none=True)
    disable_at = fields.DateTime(
        allow_none=True, metadata={"description": "Where a rotation replaced it: the grace ends."}
    )


class VersionListSchema(Schema):
    items = fields.List(fields.Nested(VersionSchema))


class RollbackSchema(StrictSchema):
    version = Integer(
        required=True,
        metadata={"description": "The version whose value becomes current again."},
    )


class RotateSchema(ValueInputMixin, VersionValidityMixin, StrictSchema):
    value = ValueText(
        load_default=None,
        allow_nul=True,
        metadata={"description": "The new value; without it the policy's rotator makes one."},
    )


class RotationPolicyInputSchema(StrictSchema):
    rotator = Text(
        required=True, validate=validate.Length(1, 64), metadata={"description": "random, webhook"}
    )
    settings = fields.Dict(
        keys=Text(),
        validate=storable_json,
        load_default=dict,
        metadata={"description": "The rotator's; keys by reference (secret_env, secret_file)."},
    )
    interval_seconds = Integer(allow_none=True, load_default=None)
    cron = Text(
        allow_none=True, load_default=None, metadata={"description": "Five fields, in UTC."}
    )
    grace_seconds = Integer(
        minimum=0,
        allow_none=True,
        load_default=None,
        metadata={"description": "How long the replaced version stays readable."},
    )


class RotationPolicySchema(Schema):
    class Meta:
        ordered = True

    secret_id = fields.UUID()
    rotator = fields.String()
    settings = fields.Dict(keys=fields.String())
    interval_seconds = fields.Integer(allow_none=True)
    cron = fields.String(allow_none=True)
    grace_seconds = fields.Integer()
    next_run_at = fields.DateTime()
    last_run_at = fields.DateTime(allow_none=True)
    last_status = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String()
    updated_at = fields.DateTime(allow_none=True)
    updated_by = fields.String(allow_none=True)
