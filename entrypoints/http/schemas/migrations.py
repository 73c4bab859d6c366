"""Schemas of migrations between storage backends."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from entrypoints.http.schemas.fields import StrictSchema, Text
from entrypoints.http.schemas.scopes import ScopeRefSchema


class SelectorSchema(StrictSchema):
    scope = fields.Nested(
        ScopeRefSchema,
        metadata={"description": "The scope whose secrets (and its subtree's) move [global]."},
    )
    environment = Text(allow_none=True, load_default=None)
    prefix = Text(allow_none=True, load_default=None, validate=validate.Length(min=1, max=255))


class MigrationArgsSchema(StrictSchema):
    source = Text(
        required=True, data_key="from", metadata={"description": "Backend instance to leave."}
    )
    target = Text(
        required=True, data_key="to", metadata={"description": "Backend instance to move to."}
    )
    selector = fields.Nested(SelectorSchema, load_default=dict)
    all_versions = fields.Boolean(
        load_default=False,
        metadata={"description": "Every version holding a value, not just the current one."},
    )
    delete_source = fields.Boolean(
        load_default=False,
        metadata={"description": "Destroy the source copies once each secret is switched."},
    )


class ProgressSchema(Schema):
    total = fields.Integer()
    done = fields.Integer()
    failed = fields.Integer()
    remaining = fields.Integer()


class MigrationSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    state = fields.String(
        metadata={"description": "pending, running, succeeded, failed (see report) or refused"}
    )
    params = fields.Dict()
    progress = fields.Method("progress_of", metadata={"description": "Secrets."})
    counters = fields.Dict(keys=fields.String(), values=fields.Integer())
    report = fields.Dict(
        metadata={
            "description": "failures (per secret, with a reason), misfits (what does not fit the "
            "target), stray_copies; never a value"
        }
    )
    last_error = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    lease_owner = fields.String(allow_none=True)
    lease_until = fields.DateTime(allow_none=True)

    def progress_of(self, job: Any) -> dict[str, int]:
        return ProgressSchema().dump(
            {"total": job.total, "done": job.done, "failed": job.failed, "remaining": job.remaining}
        )


class MigrationListSchema(Schema):
    items = fields.List(fields.Nested(MigrationSchema))


class PlannedSecretSchema(Schema):
    secret_id = fields.UUID()
    name = fields.String()
    scope = fields.String()
    environment = fields.String(allow_none=True)
    versions = fields.List(fields.Integer())


class MisfitSchema(Schema):
    secret_id = fields.UUID()
    name = fields.String()
    version = fields.Integer(allow_none=True)
    reason = fields.String()


class MigrationPlanSchema(Schema):
    secrets = fields.List(fields.Nested(PlannedSecretSchema))
    versions = fields.Integer()
    misfits = fields.List(fields.Nested(MisfitSchema))
