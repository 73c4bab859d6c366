"""`secretctl`: run the server, migrate the database, administer; the client commands of
`entrypoints.client` are registered here too."""

from __future__ import annotations

import secrets as token_generator
import sys
from dataclasses import replace
from typing import Any

import click

from core.access import Role
from core.bindings import NewBinding
from core.errors import ConfigurationError, ServiceError
from entrypoints.client import CLIENT_COMMANDS, parse_scope
from entrypoints.config import Settings, load_settings
from ports.values import Principal, ScopeRef, ScopeType

# The operator at the machine, acting on the database directly (recorded as `cli`).
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
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int | None, no_migrate: bool
) -> None:
    """Upgrade the database, then serve the API with gunicorn."""
    from entrypoints.server import prepare, run_gunicorn

    settings = settings_of(ctx, host=host, port=port, workers=workers)
    generated = settings.dev_root_token is None and not settings.production
    if generated:
        settings = replace(settings, dev_root_token="dev." + token_generator.token_urlsafe(32))
    try:
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
    run_gunicorn(settings)


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
    from entrypoints.container import Container

    kind, scope_id = parse_scope(scope_text)
    container = Container(settings=settings_of(ctx))
    try:
        binding = container.binding_service().create(
            OPERATOR, NewBinding(principal, Role(role), ScopeRef(ScopeType(kind), scope_id))
        )
    except ServiceError as error:
        raise click.ClickException(f"{error.code}: {error.message}") from None
    finally:
        container.shutdown_resources()
    click.echo(f"granted {binding.role.value} at {binding.scope} to {binding.principal}")


for command in CLIENT_COMMANDS:
    main.add_command(command)
