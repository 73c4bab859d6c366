"""`resolve`: the effective secrets of a context, which one wins each name and what it shadows."""

from __future__ import annotations

from typing import Any

import click

from entrypoints.client import Client, context_options, with_options
from entrypoints.commands.output import Output, field, output_options, scope_text


def fetch_resolution(client: Client, include_values: bool, **context: str | None) -> list[Any]:
    params: dict[str, Any] = {key: value for key, value in context.items() if value}
    params["include_values"] = "true" if include_values else "false"
    return list(client.json("GET", "/resolve", params=params)["items"])


RESOLVED_COLUMNS = (
    ("name", field("name")),
    ("from", lambda item: scope_text(item["scope"])),
    ("env", lambda item: item["environment"] or "*"),
    ("shadows", lambda item: ", ".join(scope_text(s["scope"]) for s in item["shadows"])),
)


@click.command()
@output_options
@with_options(context_options)
def resolve(
    out: Output,
    addr: str | None,
    token: str | None,
    project: str | None,
    team: str | None,
    organization: str | None,
    environment: str | None,
) -> None:
    """Show the effective secrets of a context: which one wins each name, and what it shadows.

    \b
      secretctl resolve --project p-42 --env production
      secretctl resolve --project p-42 -o env      # NAME=secret://… of each winner
    """
    items = fetch_resolution(
        Client(addr, token),
        False,
        project=project,
        team=team,
        organization=organization,
        environment=environment,
    )
    out.items(items, RESOLVED_COLUMNS, env=lambda item: (item["name"], item["reference"]))
