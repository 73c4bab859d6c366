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

from core.domain.errors import Conflict, Forbidden, NotFound
from core.domain.migration import MigrationRequest
from core.domain.values import ScopeRef
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.migrations import (
    MigrationArgsSchema,
    MigrationListSchema,
    MigrationPlanSchema,
    MigrationSchema,
)
from entrypoints.http.secrets import scope_ref

blp = Blueprint(
    "migrations",
    __name__,
    url_prefix="/api/v1",
    description="Migrations between storage backends: copy, verify, switch, resume, report.",
)


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
        jobs = current_container().migration_service().list_jobs(g.principal)
        return {"items": jobs}

    @blp.arguments(MigrationArgsSchema())
    @blp.response(202, MigrationSchema)
    @raises(Forbidden, NotFound, Conflict)
    @operation_id("start_migration")
    def post(self, data: dict[str, Any]) -> Any:
        """Start a migration (admins of the selected scope): the job the worker runs."""
        service = current_container().migration_service()
        return service.start(g.principal, migration_request(data))


@blp.route("/migrations/dry-run")
class MigrationDryRun(MethodView):
    @blp.arguments(MigrationArgsSchema())
    @blp.response(200, MigrationPlanSchema)
    @raises(Forbidden, NotFound)
    @operation_id("plan_migration")
    def post(self, data: dict[str, Any]) -> Any:
        """What a migration would move, and every value the target cannot take; moves nothing."""
        service = current_container().migration_service()
        return service.plan(g.principal, migration_request(data))


@blp.route("/migrations/<uuid:job_id>")
class Migration(MethodView):
    @blp.response(200, MigrationSchema)
    @raises(Forbidden)
    def get(self, job_id: UUID) -> Any:
        """A migration's state, progress (secrets done / failed / remaining) and report."""
        return current_container().migration_service().get(g.principal, job_id)
