"""`/api/v1/migrations`: move secrets' values from one storage backend to another, as a job.

Starting one records the job (202); the worker (`secretctl worker`) or an operator at the
machine (`secretctl migrate --resume JOB`) runs it. `GET …/{id}` follows its progress and ends
with its report. A dry run (`POST …/migrations/dry-run`) says what would move and what does not
fit the target, and moves nothing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from core.domain.values import ScopeRef
from core.migration import MigrationRequest
from entrypoints.http import schemas
from entrypoints.http.blueprint import Blueprint, errors, operation_id
from entrypoints.http.context import audited, current_container
from entrypoints.http.secrets import scope_ref

blp = Blueprint(
    "migrations",
    __name__,
    url_prefix="/api/v1",
    description="Migrations between storage backends: copy, verify, switch, resume, report.",
)


class SelectorSchema(schemas.StrictSchema):
    scope = fields.Nested(
        schemas.ScopeRefSchema,
        metadata={"description": "The scope whose secrets (and its subtree's) move [global]."},
    )
    environment = schemas.Text(allow_none=True, load_default=None)
    prefix = schemas.Text(
        allow_none=True, load_default=None, validate=validate.Length(min=1, max=255)
    )


class MigrationArgsSchema(schemas.StrictSchema):
    source = schemas.Text(
        required=True, data_key="from", metadata={"description": "Backend instance to leave."}
    )
    target = schemas.Text(
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


def migration_request(data: dict[str, Any]) -> MigrationRequest:
    selector = data["selector"]
    scope = selector.get("scope")
    return MigrationRequest(
        source=data["source"],
        target=data["target"],
        scope=scope_ref(scope["type"], scope.get("id")) if scope else ScopeRef.global_scope(),
        environment=selector.get("environment"),
        prefix=selector.get("prefix"),
        all_versions=data["all_versions"],
        delete_source=data["delete_source"],
    )


@blp.route("/migrations")
class Migrations(MethodView):
    @blp.response(200, MigrationListSchema)
    @operation_id("list_migrations")
    def get(self) -> Any:
        """The newest migrations of the scopes the caller administers."""
        jobs = audited(current_container().migration_service).list_jobs(g.principal)
        return {"items": jobs}

    @blp.arguments(MigrationArgsSchema())
    @blp.response(202, MigrationSchema)
    @errors(403, 404, 409)
    @operation_id("start_migration")
    def post(self, data: dict[str, Any]) -> Any:
        """Start a migration (admins of the selected scope): the job the worker runs."""
        service = audited(current_container().migration_service)
        return service.start(g.principal, migration_request(data))


@blp.route("/migrations/dry-run")
class MigrationDryRun(MethodView):
    @blp.arguments(MigrationArgsSchema())
    @blp.response(200, MigrationPlanSchema)
    @errors(403, 404)
    @operation_id("plan_migration")
    def post(self, data: dict[str, Any]) -> Any:
        """What a migration would move, and every value the target cannot take; moves nothing."""
        service = audited(current_container().migration_service)
        return service.plan(g.principal, migration_request(data))


@blp.route("/migrations/<uuid:job_id>")
class Migration(MethodView):
    @blp.response(200, MigrationSchema)
    @errors(403)
    def get(self, job_id: UUID) -> Any:
        """A migration's state, progress (secrets done / failed / remaining) and report."""
        return audited(current_container().migration_service).get(g.principal, job_id)
