"""`secretctl migrate`: move secrets' values between storage backends, at the machine.

Like `vault operator migrate`, it runs where the service's configuration is (the database and
every backend's credentials) and acts as the operator (`cli` in the audit trail). It records
the job, runs it with a progress bar (at a terminal, unless -q) and ends with a summary table
(or the job as JSON, `-o json`); a run that was killed is
resumed with `--resume JOB` (`--take-over` if its lease has not run out yet but the process
is known to be gone), or by any `secretctl worker` once its lease has run out.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.domain.jobs import Job
from core.domain.values import ScopeRef, ScopeType
from entrypoints.commands.exits import ExitCode
from entrypoints.commands.operator import OPERATOR, operator_container
from entrypoints.commands.output import Output, output_options, progress_bar
from entrypoints.commands.references import parse_scope

if TYPE_CHECKING:  # the service's own modules load when a migration runs, not at every command
    from core.domain.migration import MigrationPlan, MigrationRequest

SELECTOR_KEYS = ("scope", "env", "prefix")


def parse_selector(pairs: tuple[str, ...]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in SELECTOR_KEYS or not value:
            raise click.BadParameter(
                "use scope=TYPE:ID (or global), env=NAME or prefix=TEXT", param_hint="--selector"
            )
        selector[key] = value
    return selector


def request_of(
    source: str | None,
    target: str | None,
    selector: dict[str, str],
    all_versions: bool,
    delete_source: bool,
) -> MigrationRequest:
    from core.domain.migration import MigrationRequest

    if not source or not target:
        raise click.UsageError("name the backends: --from A --to B (or --resume JOB)")
    where = parse_scope(selector.get("scope", "global"), "--selector")
    kind, scope_id = where.type, where.id
    try:
        scope = ScopeRef(ScopeType(kind), scope_id)
    except ValueError:
        raise click.BadParameter(f"unknown scope type '{kind}'", param_hint="--selector") from None
    return MigrationRequest(
        source,
        target,
        scope,
        environment=selector.get("env"),
        prefix=selector.get("prefix"),
        all_versions=all_versions,
        delete_source=delete_source,
    )


@click.command("migrate")
@click.option("--from", "source", help="Backend instance to move the values from.")
@click.option("--to", "target", help="Backend instance to move them to.")
@click.option(
    "--selector",
    multiple=True,
    help="scope=TYPE:ID (its subtree; global by default), env=NAME, prefix=TEXT. Repeatable.",
)
@click.option("--all-versions", is_flag=True, help="Every version with a value, not the current.")
@click.option("--delete-source", is_flag=True, help="Destroy the source copies once switched.")
@click.option("--dry-run", is_flag=True, help="Show what would move and what does not fit.")
@click.option("--detach", is_flag=True, help="Record the job and leave it to the worker.")
@click.option("--resume", "resume", help="Resume migration JOB (an id) instead of starting one.")
@click.option("--take-over", is_flag=True, help="With --resume: its runner is known to be gone.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@output_options
@click.pass_context
def migrate(
    ctx: click.Context,
    out: Output,
    source: str | None,
    target: str | None,
    selector: tuple[str, ...],
    all_versions: bool,
    delete_source: bool,
    dry_run: bool,
    detach: bool,
    resume: str | None,
    take_over: bool,
    quiet: bool,
) -> None:
    """Move secrets' values from one storage backend to another: copy, read back and compare
    checksums, switch each secret atomically, then (with --delete-source) remove the source.

    Exits with status 1 when the job was refused (a value does not fit the target) or some
    secrets could not be moved (they stay on the source; the table says why).

    \b
      secretctl migrate --from local --to vault-prod --selector scope=project:p-42 --dry-run
      secretctl migrate --from local --to vault-prod --selector scope=project:p-42
      secretctl migrate --resume 6c1f… --take-over
    """
    from core.domain.jobs import JobState
    from entrypoints.factories import new_worker_id

    with operator_container(ctx) as container:
        service = container.migration_service()
        if resume:
            job_id = _job_id(resume)
        else:
            request = request_of(
                source, target, parse_selector(selector), all_versions, delete_source
            )
            if dry_run:
                show_plan(service.plan(OPERATOR, request), out)
                return
            job_id = service.start(OPERATOR, request).id
            click.echo(f"migration {job_id} recorded", err=True)
            if detach:
                return
        job = run_with_progress(service, job_id, new_worker_id(), take_over, quiet)
    show_summary(job, out)
    if job.state != JobState.SUCCEEDED:
        sys.exit(int(ExitCode.FAILED))


def _job_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise click.BadParameter("a migration's id (a UUID)", param_hint="--resume") from None


def run_with_progress(service: Any, job_id: UUID, runner: str, take_over: bool, quiet: bool) -> Job:
    columns = (
        TextColumn("migrating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
        TextColumn("{task.fields[remaining]} remaining"),
        TimeElapsedColumn(),
    )
    with progress_bar(columns, quiet) as progress:
        task = progress.add_task("secrets", total=None, done=0, failed=0, remaining="?")

        def advanced(job: Job) -> None:
            progress.update(
                task,
                total=job.total,
                completed=job.done + job.failed,
                done=job.done,
                failed=job.failed,
                remaining=job.remaining,
            )

        job: Job = service.run(job_id, runner, take_over=take_over, on_progress=advanced)
        advanced(job)
    return job


def show_plan(plan: MigrationPlan, out: Output) -> None:
    if not out.for_people:
        out.record(
            {
                "from": plan.request.source,
                "to": plan.request.target,
                "secrets": [
                    {
                        "secret_id": str(planned.secret_id),
                        "name": planned.name,
                        "scope": planned.scope,
                        "environment": planned.environment,
                        "versions": list(planned.versions),
                    }
                    for planned in plan.secrets
                ],
                "versions": plan.versions,
                "misfits": [
                    {
                        "secret_id": str(misfit.secret_id),
                        "name": misfit.name,
                        "version": misfit.version,
                        "reason": misfit.reason,
                    }
                    for misfit in plan.misfits
                ],
            }
        )
        return
    console = Console()
    table = Table(title=f"dry run: {plan.request.source} → {plan.request.target}")
    for column in ("secret", "scope", "environment", "versions"):
        table.add_column(column)
    for planned in plan.secrets:
        versions = ", ".join(str(number) for number in planned.versions) or "(metadata only)"
        table.add_row(planned.name, planned.scope, planned.environment or "", versions)
    console.print(table)
    if plan.misfits:
        misfits = Table(title="does not fit the target (nothing would move)", title_style="red")
        for column in ("secret", "version", "reason"):
            misfits.add_column(column)
        for misfit in plan.misfits:
            misfits.add_row(misfit.name, str(misfit.version or ""), misfit.reason)
        console.print(misfits)
    console.print(f"{len(plan.secrets)} secrets, {plan.versions} versions would move")


def show_summary(job: Job, out: Output) -> None:
    if not out.for_people:
        out.record(
            {
                "id": str(job.id),
                "state": job.state,
                "params": job.params,
                "total": job.total,
                "done": job.done,
                "failed": job.failed,
                "counters": job.counters,
                "report": job.report,
                "last_error": job.last_error,
            }
        )
        return
    console = Console()
    table = Table(title=f"migration {job.id}: {job.params['from']} → {job.params['to']}")
    columns = ("state", "secrets", "done", "failed", "versions copied", "sources removed")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        job.state,
        str(job.total),
        str(job.done),
        str(job.failed),
        str(job.counters.get("versions_copied", 0)),
        str(job.counters.get("sources_removed", 0)),
    )
    console.print(table)
    for title, key, fields in (
        ("failed (left on the source)", "failures", ("name", "secret_id", "reason")),
        ("does not fit the target (nothing moved)", "misfits", ("name", "version", "reason")),
    ):
        rows = job.report.get(key) or []
        if rows:
            listing = Table(title=title, title_style="red")
            for field in fields:
                listing.add_column(field)
            for row in rows:
                listing.add_row(*(str(row.get(field) or "") for field in fields))
            console.print(listing)
