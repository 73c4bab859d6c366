"""`secretctl`: run the server and its worker, upgrade the database; every other command is
registered here from `entrypoints.commands` (the client commands, grouped as people think of
them, and the operator's commands at the machine)."""

from __future__ import annotations

import os
import secrets as token_generator
import signal
import sys
import threading
from dataclasses import replace

import click

from core.domain.errors import ConfigurationError
from entrypoints.commands.access import ACCESS_COMMANDS
from entrypoints.commands.audit import AUDIT_COMMANDS
from entrypoints.commands.catalog import CATALOG_COMMANDS
from entrypoints.commands.operator import (
    OPERATOR,
    OPERATOR_COMMANDS,
    no_way_in,
    operator_container,
    settings_of,
)
from entrypoints.commands.resolve import resolve
from entrypoints.commands.rotation import ROTATION_COMMANDS
from entrypoints.commands.scopes import scope
from entrypoints.commands.secrets import SECRET_COMMANDS
from entrypoints.commands.session import SESSION_COMMANDS
from entrypoints.commands.versions import VERSION_COMMANDS
from entrypoints.migrate_client import migrate
from entrypoints.run_client import run
from entrypoints.transfer_client import TRANSFER_COMMANDS

__all__ = ["OPERATOR", "main", "operator_container"]  # OPERATOR: the tests' operator


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="secret-management", prog_name="secretctl")
@click.option("--config", "config_file", envvar="SECRETS_CONFIG", help="TOML configuration file.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """Secret management: the client of a server's API, the server itself, and the operator's
    commands at the machine. `secretctl COMMAND --help` shows each command's examples; exit
    codes: 2 usage, 3 not found, 4 not allowed, 5 conflict, 6 invalid input, 7 unavailable."""
    ctx.obj = {"config_file": config_file}


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
    from entrypoints.server import check_listen_address, metrics_directory, prepare, run_server

    settings = settings_of(ctx, host=host, port=port, workers=workers)
    generated = settings.dev_root_token is None and not settings.production
    if generated:
        settings = replace(settings, dev_root_token="dev." + token_generator.token_urlsafe(32))
    try:
        check_listen_address(settings)  # before anything is prepared or printed
        metrics_directory(os.environ)  # before anything counts: every process counts there
        prepare(settings, migrate=not no_migrate)
    except ConfigurationError as error:
        raise click.ClickException(error.message) from None
    address = f"{'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
    click.echo(f"Secret Management {settings.mode} server on {address}", err=True)
    click.echo(f"Database: {_redact_url(settings.database_url)}", err=True)
    if warning := no_way_in(settings):
        click.secho(warning, err=True, fg="red", bold=True)
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

    settings = settings_of(ctx)
    configure_logging(settings.log_level, settings.log_format)
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


# -- every other command ------------------------------------------------------------------------

for command in (
    *SECRET_COMMANDS,
    *VERSION_COMMANDS,
    *ROTATION_COMMANDS,
    scope,
    *ACCESS_COMMANDS,
    *AUDIT_COMMANDS,
    *CATALOG_COMMANDS,
    *SESSION_COMMANDS,
    resolve,
    run,
    *TRANSFER_COMMANDS,
    migrate,
    *OPERATOR_COMMANDS,
):
    main.add_command(command)


if __name__ == "__main__":  # `python -m entrypoints.cli`: how `serve` starts its worker
    main()
