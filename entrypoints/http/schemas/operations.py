"""Schemas of operations: storage backends, encryption keys, health and status."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.adoption import AdoptionStatus
from core.keys import DEFAULT_BATCH, MAX_BATCH
from entrypoints.http.schemas.common import HealthSchema
from entrypoints.http.schemas.fields import Integer, StrictSchema, Text
from entrypoints.http.schemas.scopes import ScopeSchema


class CapabilitiesSchema(Schema):
    max_value_bytes = fields.Integer()
    native_versioning = fields.Boolean(
        metadata={"description": "Versions are versions of one object in the store."}
    )
    native_soft_delete = fields.Boolean(
        metadata={"description": "What destroy or purge removed stays recoverable in the store."}
    )


class BackendHealthSchema(Schema):
    ok = fields.Boolean()
    latency_ms = fields.Float()
    detail = fields.String()


class BackendSchema(Schema):
    class Meta:
        ordered = True

    name = fields.String()
    plugin = fields.String()
    default = fields.Boolean()
    capabilities = fields.Nested(CapabilitiesSchema)
    health = fields.Nested(BackendHealthSchema)


class BackendListSchema(Schema):
    items = fields.List(fields.Nested(BackendSchema))


class AdoptionArgsSchema(StrictSchema):
    prefix = Text(
        required=True,
        validate=validate.Length(max=512),
        metadata={"description": "Adopt the values whose external names start with this."},
    )
    scope = fields.Nested(ScopeSchema, required=True)
    environment = Text(allow_none=True, load_default=None)


class AdoptionResultSchema(Schema):
    class Meta:
        ordered = True

    external_name = fields.String()
    name = fields.String()
    status = fields.Enum(AdoptionStatus, by_value=True)
    secret_id = fields.UUID()
    reason = fields.String()


class AdoptionReportSchema(Schema):
    items = fields.List(fields.Nested(AdoptionResultSchema))
    adopted = fields.Integer()
    skipped = fields.Integer()
    failed = fields.Integer()


class BacklogSchema(Schema):
    class Meta:
        ordered = True

    outbox_pending = fields.Integer(
        metadata={"description": "Events not delivered yet, still to be tried."}
    )
    outbox_given_up = fields.Integer(
        metadata={"description": "Events given up on after their last delivery attempt."}
    )
    jobs_queued = fields.Integer(metadata={"description": "Migrations waiting or running."})
    rotations_due = fields.Integer(
        metadata={"description": "Scheduled rotations whose time has come."}
    )


class WorkerProbeSchema(Schema):
    class Meta:
        ordered = True

    ok = fields.Boolean(metadata={"description": "The workers' rows and backlog could be read."})
    last_heartbeat_age_seconds = fields.Float(
        allow_none=True,
        metadata={"description": "Since the latest heartbeat of any worker; null: none runs."},
    )
    alive = fields.Integer(metadata={"description": "Workers that beat within the last minute."})
    backlog = fields.Nested(BacklogSchema)
    detail = fields.String(metadata={"description": "Why they could not be read."})


class ReadySchema(HealthSchema):
    worker = fields.Nested(
        WorkerProbeSchema,
        metadata={"description": "The lifecycle workers, reported without failing readiness."},
    )


class KeyUsageSchema(Schema):
    id = fields.String()
    provider = fields.String()
    state = fields.Function(
        lambda usage: usage.state.value if usage.state else "unrecorded",
        metadata={"description": "active, previous, retired, or unrecorded"},
    )
    blobs = fields.Integer(metadata={"description": "Stored values it wraps."})


class KeyListSchema(Schema):
    items = fields.List(fields.Nested(KeyUsageSchema))


class RewrapArgsSchema(StrictSchema):
    batch_size = Integer(maximum=MAX_BATCH, load_default=DEFAULT_BATCH)
    limit = Integer(load_default=None)


class FailedBlobSchema(Schema):
    id = fields.UUID()
    key_id = fields.String()
    problem = fields.String()


class RewrapReportSchema(Schema):
    active_key = fields.String()
    rewrapped = fields.Integer()
    batches = fields.Integer()
    failed = fields.List(fields.Nested(FailedBlobSchema))
    remaining = fields.Integer(metadata={"description": "Values still under another key."})
    retired = fields.List(fields.String())
    complete = fields.Boolean()


class WorkerSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    host = fields.String()
    pid = fields.Integer()
    started_at = fields.DateTime()
    last_heartbeat_at = fields.DateTime()
    last_heartbeat_age_seconds = fields.Float()
    alive = fields.Boolean(metadata={"description": "It beat within the last minute."})
    current_job = fields.String(
        allow_none=True, metadata={"description": "What it is doing; null between passes."}
    )


class StatusSchema(Schema):
    class Meta:
        ordered = True

    workers = fields.List(
        fields.Nested(WorkerSchema),
        metadata={"description": "Every worker with a heartbeat, the latest first."},
    )
    last_heartbeat_age_seconds = fields.Float(allow_none=True)
    alive = fields.Integer()
    backlog = fields.Nested(BacklogSchema)
