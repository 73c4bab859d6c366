"""`secretctl`: run the server, migrate the database, administer; the client commands of
`entrypoints.client` are registered here too."""

from __future__ import annotations

import os
import re
import secrets as token_generator
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import click

from core.access import Role
from core.bindings import NewBinding
from core.errors import ConfigurationError, ServiceError
from entrypoints.client import (
    CLIENT_COMMANDS,
    Client,
    client_options,
    parse_scope,
    scope_body,
    server_options,
    with_options,
)
from entrypoints.config import Settings, load_settings
from entrypoints.migrate_client import migrate
from entrypoints.transfer_client import TRANSFER_COMMANDS
from ports.values import Principal, ScopeRef, ScopeType

# The operator at the machine, acting on the database directly (recorded as `cli`).
AGE = re.compile(r"^(\d{1,6})([dhm])$")
OPERATOR = Principal(id="cli", kind="root", is_root=True)


@click.group()
@click.option("--config", "config_file", envvar="SECRETS_CONFIG", help="TOML configuration file.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """Secret management: server, database and client commands."""
    ctx.obj = {"config_file": config_file}


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config_file=ctx.obj["config_file"])
    except ConfigurationError as error:
        raise click.ClickException(error.message) from None
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


# -- server -----------------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Address to listen on (SECRETS_HOST).")
@click.option("--port", type=int, help="Port to listen on (SECRETS_PORT).")
@click.option("--workers", type=int, help="Worker processes (SECRETS_WORKERS).")
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database first.")
@click.option(
    "--no-worker",
    is_flag=True,
    help="Run no lifecycle worker here: workers run apart (SECRETS_WORKER__EMBEDDED=false).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    no_migrate: bool,
    no_worker: bool,
) -> None:
    """Upgrade the database, then serve the API (granian, WSGI workers) and run the lifecycle
    jobs in a `secretctl worker` of its own (unless --no-worker)."""
    from entrypoints.server import check_listen_address, prepare, run_server

    settings = settings_of(ctx, host=host, port=port, workers=workers)
    generated = settings.dev_root_token is None and not settings.production
    if generated:
        settings = replace(settings, dev_root_token="dev." + token_generator.token_urlsafe(32))
    try:
        check_listen_address(settings)  # before anything is prepared or printed
        prepare(settings, migrate=not no_migrate)
    except ConfigurationError as error:
        raise click.ClickException(error.message) from None
    address = f"http://{settings.host}:{settings.port}"
    click.echo(f"Secret Management {settings.mode} server on {address}", err=True)
    click.echo(f"Database: {_redact_url(settings.database_url)}", err=True)
    if generated:
        click.echo("Development root token (shown once, new at every start):", err=True)
        click.echo(f"  export SECRETS_ADDR={address} SECRETS_TOKEN={settings.dev_root_token}")
    sys.stdout.flush()
    if ctx.obj["config_file"]:  # the workers read the same file
        os.environ["SECRETS_CONFIG"] = str(ctx.obj["config_file"])
    try:
        run_server(settings, with_worker=settings.worker["embedded"] and not no_worker)
    except ConfigurationError as error:  # the port was taken while the database was prepared
        raise click.ClickException(error.message) from None


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration."""
    from adapters.db.engine import create_engine_from_url
    from adapters.db.migrate import current_revision, upgrade

    settings = settings_of(ctx)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_from_url(settings.database_url)
    try:
        upgrade(engine)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


@main.command()
@click.option("--once", is_flag=True, help="Run every due job once, then exit.")
@click.option("--poll-seconds", type=float, help="Between passes (SECRETS_WORKER__POLL_SECONDS).")
@click.option("--exit-with-parent", type=int, hidden=True, help="Stop when this process dies.")
@click.pass_context
def worker(
    ctx: click.Context, once: bool, poll_seconds: float | None, exit_with_parent: int | None
) -> None:
    """Run the lifecycle jobs: grace periods, expiry warnings, scheduled rotations, version
    pruning, retention purges and event delivery. Run as many as you like on PostgreSQL."""
    from entrypoints.container import check_configured
    from entrypoints.logs import configure_logging

    configure_logging(settings_of(ctx).log_level)
    with operator_container(ctx) as container:
        check_configured(container)  # every setting, not only those the jobs reach first
        jobs = container.worker()
        if once:
            click.echo(f"worker {jobs.id}: {jobs.run_once()}")
            return
        poll = poll_seconds or container.settings().worker["poll_seconds"]
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if exit_with_parent is not None:  # the worker `secretctl serve` runs
            from entrypoints.server import exit_with_parent as watch_parent

            watch_parent(exit_with_parent, stop)
        click.echo(f"worker {jobs.id}: a pass every {poll:g} s; stop with SIGTERM", err=True)
        jobs.run(poll, stop)


# -- administration ---------------------------------------------------------------------------


@main.group()
def admin() -> None:
    """Operator commands that work on the database directly (no server, no token)."""


@admin.command("grant")
@click.option("--principal", required=True, help="user:<id>, group:<id> or service:<name>")
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
@click.option(
    "--scope", "scope_text", default="global", show_default=True, help="global or TYPE:ID"
)
@click.pass_context
def admin_grant(ctx: click.Context, principal: str, role: str, scope_text: str) -> None:
    """Grant a role directly: how the first admin of a production deployment is made."""
    kind, scope_id = parse_scope(scope_text)
    with operator_container(ctx) as container:
        binding = container.binding_service().create(
            OPERATOR, NewBinding(principal, Role(role), ScopeRef(ScopeType(kind), scope_id))
        )
    click.echo(f"granted {binding.role.value} at {binding.scope} to {binding.principal}")


@main.group()
def audit() -> None:
    """The audit trail, on the database directly (the operator at the machine)."""


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the whole hash chain and its signed checkpoints; exit 1 at the first broken link."""
    with operator_container(ctx) as container:
        result = container.audit_service().verify(OPERATOR)
    if result.broken is not None:
        raise click.ClickException(
            f"the audit chain is broken at event {result.broken.seq}: {result.broken.problem}"
        )
    click.echo(
        f"audit chain intact: {result.checked} events ({result.first_seq}..{result.last_seq})"
    )


@audit.command("prune")
@click.option("--older-than", required=True, help="An age such as 400d, 12h or 30m.")
@click.pass_context
def audit_prune(ctx: click.Context, older_than: str) -> None:
    """Delete events older than the age given, up to the last signed checkpoint before it."""
    match = AGE.fullmatch(older_than)
    if match is None:
        raise click.BadParameter("use a number and d, h or m: 400d", param_hint="--older-than")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
    with operator_container(ctx) as container:
        cutoff = container.clock().now() - timedelta(**{unit: int(match.group(1))})
        removed = container.audit_service().prune(OPERATOR, cutoff)
    click.echo(f"pruned {removed} audit events older than {cutoff.isoformat()}")


@main.group()
def keys() -> None:
    """Key-encryption keys, on the database directly (the operator at the machine)."""


@keys.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """Each key version: its id, state and how many stored values it wraps."""
    with operator_container(ctx) as container:
        for usage in container.key_service().usage(OPERATOR):
            state = usage.state.value if usage.state else "unrecorded"
            click.echo(f"{usage.id}\t{usage.provider or '-'}\t{state}\t{usage.blobs} values")


@keys.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """Make a new active key version (key file provider); then run `keys rewrap`."""
    with operator_container(ctx) as container:
        key = container.key_service().rotate(OPERATOR)
    click.echo(f"new active key {key.id}; now run: secretctl keys rewrap")


@keys.command("rewrap")
@click.option("--batch-size", type=int, default=500, show_default=True, help="Per transaction.")
@click.option("--limit", type=int, help="Stop after about this many values (resume later).")
@click.pass_context
def keys_rewrap(ctx: click.Context, batch_size: int, limit: int | None) -> None:
    """Re-wrap every value's data key under the active key, without decrypting any value.

    Resumable and safe to run in parallel; exits 1 when a value's data key did not unwrap.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with operator_container(ctx) as container:
        service = container.key_service()
        total = service.outdated(OPERATOR)
        if limit is not None:
            total = min(total, limit)
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("re-wrap", total=total)
            report = service.rewrap(
                OPERATOR,
                batch_size=batch_size,
                limit=limit,
                on_batch=lambda done: progress.update(task, completed=done.rewrapped + done.failed),
            )
    for failed in report.failed:
        click.echo(f"failed\t{failed.id}\t{failed.key_id}\t{failed.problem}", err=True)
    retired = f"; retired {', '.join(report.retired)}" if report.retired else ""
    click.echo(
        f"re-wrapped {report.rewrapped} values under {report.active_key} in {report.batches} "
        f"batches; {len(report.failed)} failed; {report.remaining} left under other keys{retired}"
    )
    if report.failed:
        sys.exit(1)


@contextmanager
def operator_container(ctx: click.Context) -> Iterator[Any]:
    from entrypoints.container import Container

    container = Container(settings=settings_of(ctx))
    try:
        yield container
    except ServiceError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from None
    finally:
        container.shutdown_resources()


for command in (*CLIENT_COMMANDS, *TRANSFER_COMMANDS, migrate):
    main.add_command(command)


# -- storage backends of a server ---------------------------------------------------------------


@main.group()
def backends() -> None:
    """Storage backend instances of a server: health, adoption."""


@backends.command("list")
@with_options(server_options)
def backends_list(addr: str | None, token: str | None) -> None:
    """Each backend instance: its plugin, live health and latency, largest value."""
    for item in Client(addr, token).json("GET", "/backends")["items"]:
        health = item["health"]
        state = f"ok {health['latency_ms']}ms" if health["ok"] else f"down: {health['detail']}"
        default = " (default)" if item["default"] else ""
        limit = item["capabilities"]["max_value_bytes"]
        click.echo(f"{item['name']}{default}\t{item['plugin']}\t{state}\tup to {limit} bytes")


@backends.command("adopt")
@click.argument("instance")
@click.option("--prefix", required=True, help="Adopt the external names starting with this.")
@click.option("--parent", help="TYPE:ID of the parent, to create the scope on first use.")
@with_options(client_options)
def backends_adopt(
    instance: str,
    prefix: str,
    parent: str | None,
    addr: str | None,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Bring the values under PREFIX in backend INSTANCE under management, without copying them.

    Exits with status 1 when some could not be adopted.
    """
    target: dict[str, Any] = scope_body(scope)
    if parent:
        target["parent"] = scope_body(parent)
    body = {"prefix": prefix, "scope": target, "environment": environment}
    report = Client(addr, token).json("POST", f"/backends/{instance}/adopt", json=body)
    for item in report["items"]:
        reason = f" ({item['reason']})" if item["reason"] else ""
        click.echo(f"{item['status']}\t{item['external_name']} -> {item['name']}{reason}")
    click.echo(
        f"{report['adopted']} adopted, {report['skipped']} skipped, {report['failed']} failed",
        err=True,
    )
    if report["failed"]:
        sys.exit(1)


if __name__ == "__main__":  # `python -m entrypoints.cli`: how `serve` starts its worker
    main()
