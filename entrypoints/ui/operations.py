"""Operations: the storage backends with their live health and latency (as `GET
/api/v1/backends`), the lifecycle workers and their backlog (`GET /api/v1/status`'s use case),
and migrations between backends: their list, a dry run (what would move, what does not fit),
starting one, and its progress (`GET /api/v1/migrations/{id}`), refreshed by the page's script
while it runs (a Refresh link without it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from uuid import UUID

from flask import g, jsonify, redirect, request, url_for

from core.domain.access import Action
from core.domain.errors import Forbidden, InvalidInput, NotFound, ServiceError
from core.domain.jobs import Job, JobState
from core.domain.migration import MigrationPlan, MigrationRequest
from core.migration.service import MigrationService
from core.worker_status import WorkerStatus
from entrypoints.http.errors import status_of
from entrypoints.http.health import backend_check
from entrypoints.ui.rights import scopes_allowing
from entrypoints.ui.scopes import parse_ref, visible_scopes
from entrypoints.ui.web import bp, container, error_text, nav_item, page, signed_in

FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.REFUSED})

nav_item("ui.operations", "Operations", order=50)


def migrations() -> MigrationService:
    return container().migration_service()


def backends() -> list[dict[str, Any]]:
    """Every configured backend instance, its plugin and live health (as the API lists them)."""
    configured = container().settings().backends
    registry = container().backends()
    return [
        {
            "name": backend.name,
            "plugin": configured[backend.name]["plugin"],
            "default": backend.name == registry.default,
            "features": [
                name.replace("_", " ")
                for name, on in asdict(backend.capabilities).items()
                if on is True
            ],
            "max_value_bytes": backend.capabilities.max_value_bytes,
            "health": backend_check(backend),
        }
        for backend in registry
    ]


def worker_status() -> WorkerStatus | None:
    """The workers, or None when the caller may not see them (admins and auditors of global)."""
    try:
        return container().worker_status_service().status(g.principal)
    except (Forbidden, NotFound):
        return None


def operations_page(status: int = 200, **context: Any) -> Any:
    found, _ = visible_scopes()
    administered = scopes_allowing(Action.ADMIN, [scope.ref for scope in found])
    listed = backends()
    return page(
        "operations.html",
        status,
        backends=listed,
        workers=worker_status(),
        now=container().clock().now(),
        jobs=migrations().list_jobs(g.principal),
        targets=[scope.ref for scope in found if scope.ref in administered],
        form=context.pop("form", {}),
        **context,
    )


@bp.get("/operations")
@signed_in
def operations() -> Any:
    return operations_page()


def migration_request(form: Any) -> MigrationRequest:
    source, target = form.get("source", ""), form.get("target", "")
    if not source or not target:
        raise InvalidInput("choose the source and the target backend", details={"field": "source"})
    return MigrationRequest(
        source=source,
        target=target,
        scope=parse_ref(form.get("scope", "global/global")),
        environment=form.get("environment", "").strip() or None,
        prefix=form.get("prefix", "").strip() or None,
        all_versions=form.get("all_versions") == "1",
        delete_source=form.get("delete_source") == "1",
    )


@bp.post("/operations/migrations")
@signed_in
def start_migration() -> Any:
    """`step=plan`: the dry run, shown on the page (nothing moves); `step=start`: the job."""
    form = request.form
    try:
        wanted = migration_request(form)
        if form.get("step") != "start":
            plan: MigrationPlan = migrations().plan(g.principal, wanted)
            return operations_page(plan=plan, form=form)
        job = migrations().start(g.principal, wanted)
    except ServiceError as error:
        return operations_page(status_of(error), error=error_text(error), form=form)
    return redirect(url_for("ui.migration", job_id=job.id))


def progress(job: Job) -> dict[str, Any]:
    return {
        "state": job.state.value,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "remaining": job.remaining,
        "finished": job.state in FINISHED,
    }


@bp.get("/operations/migrations/<uuid:job_id>")
@signed_in
def migration(job_id: UUID) -> Any:
    job = migrations().get(g.principal, job_id)
    return page("migration.html", job=job, progress=progress(job))


@bp.get("/operations/migrations/<uuid:job_id>/progress")
@signed_in
def migration_progress(job_id: UUID) -> Any:
    """The page's script polls this while the migration runs."""
    return jsonify(progress(migrations().get(g.principal, job_id)))
