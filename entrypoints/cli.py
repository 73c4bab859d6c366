"""`secretctl`: run the server, migrate the database, and get/set/list secrets of a server."""

from __future__ import annotations

import json
import secrets as token_generator
import sys
from dataclasses import replace
from typing import Any

import click
import requests

from core.errors import ConfigurationError
from entrypoints.config import Settings, load_settings

DEFAULT_ADDR = "http://127.0.0.1:8080"


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
    generated = settings.dev_root_token is None
    if generated:
        if settings.production:
            raise click.ClickException(
                "production mode needs SECRETS_DEV_ROOT_TOKEN (the only identity until "
                "identity providers are configured)"
            )
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


# -- client -----------------------------------------------------------------------------------


class Client:
    """A thin REST client; errors print the server's code and message."""

    def __init__(self, addr: str, token: str | None) -> None:
        if not token:
            raise click.ClickException("no token: set SECRETS_TOKEN or pass --token")
        self.addr = addr.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(
                method, f"{self.addr}/api/v1{path}", timeout=30, **kwargs
            )
        except requests.ConnectionError:
            raise click.ClickException(f"cannot reach the server at {self.addr}") from None
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        if response.status_code >= 400:
            raise click.ClickException(_error_text(response))
        return response.json()


def _error_text(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def parse_scope(text: str) -> tuple[str, str]:
    if text == "global":
        return "global", "global"
    kind, sep, scope_id = text.partition(":")
    if not sep or not scope_id:
        raise click.BadParameter("use 'global' or TYPE:ID, e.g. project:p-42", param_hint="--scope")
    return kind, scope_id


client_options = [
    click.option("--addr", envvar="SECRETS_ADDR", default=DEFAULT_ADDR, show_default=True),
    click.option("--token", envvar="SECRETS_TOKEN", help="Bearer token (SECRETS_TOKEN)."),
    click.option("--scope", default="global", show_default=True, help="global or TYPE:ID"),
    click.option("--env", "environment", help="Environment (e.g. production)."),
]


def with_client_options(command: Any) -> Any:
    for option in reversed(client_options):
        command = option(command)
    return command


@main.command()
@click.argument("name")
@click.option("--version", type=int, help="A specific version.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@with_client_options
def get(
    name: str,
    version: int | None,
    as_json: bool,
    addr: str,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Print a secret's value."""
    kind, scope_id = parse_scope(scope)
    params: dict[str, Any] = {"environment": environment, "version": version}
    answer = Client(addr, token).json(
        "GET",
        f"/scopes/{kind}/{scope_id}/secrets/{name}/value",
        params={k: v for k, v in params.items() if v is not None},
    )
    click.echo(json.dumps(answer, indent=2) if as_json else answer["value"])


@main.command("set")
@click.argument("name")
@click.argument("value", required=False)
@click.option("--type", "secret_type", default="generic", show_default=True)
@click.option("--description", default="")
@with_client_options
def set_(
    name: str,
    value: str | None,
    secret_type: str,
    description: str,
    addr: str,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Create a secret or write its next version. Reads the value from stdin when omitted."""
    if value is None or value == "-":
        value = sys.stdin.read()
    kind, scope_id = parse_scope(scope)
    client = Client(addr, token)
    params = {"environment": environment} if environment else {}
    found = client.call("GET", f"/scopes/{kind}/{scope_id}/secrets/{name}", params=params)
    if found.status_code == 404:
        body: dict[str, Any] = {
            "name": name,
            "value": value,
            "type": secret_type,
            "description": description,
            "scope": {"type": kind} if kind == "global" else {"type": kind, "id": scope_id},
        }
        if environment:
            body["environment"] = environment
        secret = client.json("POST", "/secrets", json=body)
    elif found.status_code == 200:
        secret = client.json(
            "POST",
            f"/secrets/{found.json()['id']}/versions",
            json={"value": value},
            headers={"If-Match": found.headers.get("ETag", "*")},
        )
    else:
        raise click.ClickException(_error_text(found))
    click.echo(f"{secret['reference']} version {secret['current_version']} ({secret['id']})")


@main.command("list")
@click.option("--prefix", help="Only names starting with this.")
@click.option("--all-scopes", is_flag=True, help="Ignore --scope and list every scope.")
@with_client_options
def list_(
    prefix: str | None,
    all_scopes: bool,
    addr: str,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """List secrets' metadata."""
    params: dict[str, Any] = {"page_size": 500}
    if not all_scopes:
        params["scope_type"], params["scope_id"] = parse_scope(scope)
    if prefix:
        params["prefix"] = prefix
    if environment:
        params["environment"] = environment
    page = Client(addr, token).json("GET", "/secrets", params=params)
    for item in page["items"]:
        env = item["environment"] or "*"
        click.echo(
            f"{item['scope']['type']}/{item['scope']['id']}\t{item['name']}\t{env}\t"
            f"v{item['current_version']}\t{item['type']}\t{item['id']}"
        )
    if page["total"] > len(page["items"]):
        click.echo(f"... {page['total'] - len(page['items'])} more", err=True)
