"""What a server offers: `backends` (and adopting what a backend holds), `formats`, `types`."""

from __future__ import annotations

import sys
from typing import Any

import click

from entrypoints.client import Client, with_client
from entrypoints.commands.exits import ExitCode
from entrypoints.commands.output import Output, field, output_options
from entrypoints.commands.references import parse_scope

BACKEND_COLUMNS = (
    ("name", lambda item: item["name"] + (" (default)" if item["default"] else "")),
    ("plugin", field("plugin")),
    ("health", lambda item: health_text(item["health"])),
    ("largest value", lambda item: f"up to {item['capabilities']['max_value_bytes']} bytes"),
)


def health_text(health: dict[str, Any]) -> str:
    return f"ok {health['latency_ms']}ms" if health["ok"] else f"down: {health['detail']}"


@click.group(invoke_without_command=True)
@click.pass_context
def backends(ctx: click.Context) -> None:
    """Storage backend instances of a server: health, adoption (`backends` alone lists them).

    \b
      secretctl backends
      secretctl backends adopt vault-prod --prefix apps/billing/ --scope project:p-42
    """
    if ctx.invoked_subcommand is None:  # `backends list`, its options from the environment
        with backends_list.make_context("list", [], parent=ctx) as listing:
            backends_list.invoke(listing)


@backends.command("list")
@output_options
@with_client
def backends_list(client: Client, out: Output) -> None:
    """Each backend instance: its plugin, live health and latency, largest value.

    \b
      secretctl backends list -o json
    """
    items = client.json("GET", "/backends")["items"]
    out.items(items, BACKEND_COLUMNS, env=lambda item: (item["name"], item["plugin"]))


@backends.command("adopt")
@click.argument("instance")
@click.option("--prefix", required=True, help="Adopt the external names starting with this.")
@click.option("--scope", default="global", show_default=True, help="global or TYPE:ID")
@click.option("--env", "environment", help="Environment of the adopted secrets.")
@click.option("--parent", help="TYPE:ID of the parent, to create the scope on first use.")
@output_options
@with_client
def backends_adopt(
    client: Client,
    out: Output,
    instance: str,
    prefix: str,
    scope: str,
    environment: str | None,
    parent: str | None,
) -> None:
    """Bring the values under PREFIX in backend INSTANCE under management, without copying them.

    Exits with status 1 when some could not be adopted.

    \b
      secretctl backends adopt vault-prod --prefix apps/billing/ --scope project:p-42
    """
    target: dict[str, Any] = parse_scope(scope).body()
    if parent:
        target["parent"] = parse_scope(parent, "--parent").body()
    body = {"prefix": prefix, "scope": target, "environment": environment}
    report = client.json("POST", f"/backends/{instance}/adopt", json=body)
    columns = (
        ("status", field("status")),
        ("adopted", lambda item: f"{item['external_name']} -> {item['name']}"),
        ("reason", field("reason")),
    )
    if out.for_people:
        out.items(report["items"], columns)
        click.echo(
            f"{report['adopted']} adopted, {report['skipped']} skipped, {report['failed']} failed",
            err=True,
        )
    else:
        out.record(report)
    if report["failed"]:
        sys.exit(int(ExitCode.FAILED))


@click.command()
@output_options
@with_client
def formats(client: Client, out: Output) -> None:
    """The import and export formats the server's plugins offer.

    \b
      secretctl formats
    """
    columns = (
        ("name", field("name")),
        ("extensions", field("extensions")),
        ("metadata", field("carries_metadata")),
        ("description", field("description")),
    )
    items = client.json("GET", "/formats")["items"]
    out.items(items, columns, env=lambda item: (item["name"], item["media_type"]))


@click.command()
@output_options
@with_client
def types(client: Client, out: Output) -> None:
    """The secret types the server's plugins offer, with their fields.

    \b
      secretctl types
      secretctl types -o json | jq '.[] | select(.name == "aws_credentials")'
    """
    columns = (
        ("name", field("name")),
        ("fields", field("fields")),
        ("sensitive", field("sensitive_fields")),
        ("description", field("description")),
    )
    items = client.json("GET", "/secret-types")["items"]
    out.items(items, columns, env=lambda item: (item["name"], item["description"]))


CATALOG_COMMANDS = (backends, formats, types)
