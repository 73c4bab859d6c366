"""`resolve`: the effective secrets of a context, which one wins each name and what it shadows;
`--expand` reads their values with each `${secret://…}` replaced, `--explain` says where each
name comes from, what it shadows and (with `--expand`) which references its value took."""

from __future__ import annotations

from typing import Any

import click

from entrypoints.client import Client, context_options, with_options
from entrypoints.commands.output import Output, echo_env, field, output_options, scope_text


def fetch_resolution(
    client: Client, include_values: bool, expand: bool = False, **context: str | None
) -> list[Any]:
    params: dict[str, Any] = {key: value for key, value in context.items() if value}
    params["include_values"] = "true" if include_values or expand else "false"
    if expand:
        params["expand"] = "true"
    return list(client.json("GET", "/resolve", params=params)["items"])


def where(secret: dict[str, Any]) -> str:
    """`project/p-42 [production]`, `*` for a secret of no environment."""
    return f"{scope_text(secret['scope'])} [{secret['environment'] or '*'}]"


def value_shown(item: dict[str, Any]) -> str:
    if item["value"] is None:
        return f"({item['value_error']})"
    if item["encoding"] != "utf-8":
        return f"({item['encoding']}) {item['value']}"
    return str(item["value"])


RESOLVED_COLUMNS = (
    ("name", field("name")),
    ("from", lambda item: scope_text(item["scope"])),
    ("env", lambda item: item["environment"] or "*"),
    ("shadows", lambda item: ", ".join(scope_text(s["scope"]) for s in item["shadows"])),
)
EXPANDED_COLUMNS = (*RESOLVED_COLUMNS[:3], ("value", value_shown))
EXPLAINED_COLUMNS = (
    ("name", field("name")),
    ("from", where),
    ("version", field("version")),
    ("reference", field("reference")),
    ("shadows", lambda item: ", ".join(where(s) for s in item["shadows"])),
    (
        "expanded from",
        lambda item: ", ".join(f"{e['reference']} (v{e['version']})" for e in item["expansions"]),
    ),
)


def explanation(item: dict[str, Any], expanded: bool) -> dict[str, Any]:
    """What `--explain` says of a name: its winner, what it shadows, and with `--expand` the
    references its value was expanded with; never the value."""
    explained = {
        "name": item["name"],
        "id": item["id"],
        "scope": item["scope"],
        "environment": item["environment"],
        "version": item["version"],
        "reference": item["reference"],
        "shadows": item["shadows"],
    }
    if expanded:
        explained["expansions"] = item["expansions"]
        explained["value_error"] = item["value_error"]
    return explained


def env_pairs(items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """`NAME=value` of each expanded text value; a name without one is said on stderr."""
    pairs = []
    for item in items:
        if item["value"] is None or item["encoding"] != "utf-8":
            reason = item["value_error"] or f"a {item['encoding']} value"
            click.echo(f"secretctl resolve: left out {item['name']} ({reason})", err=True)
        else:
            pairs.append((item["name"], item["value"]))
    return pairs


@click.command()
@click.option(
    "--expand",
    is_flag=True,
    help="Read the values, each `${secret://…}` in them replaced by the value it names (each "
    "read authorized and audited); -o env prints NAME=value.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="For each name: the secret that wins it (scope, environment, version, reference) "
    "and those it shadows; with --expand also the references its value was expanded with "
    "(values are not printed).",
)
@output_options
@with_options(context_options)
def resolve(
    expand: bool,
    explain: bool,
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
      secretctl resolve --project p-42 --expand -o env   # NAME=value, references expanded
      secretctl resolve --project p-42 --explain --expand
    """
    items = fetch_resolution(
        Client(addr, token),
        False,
        expand,
        project=project,
        team=team,
        organization=organization,
        environment=environment,
    )
    if explain:
        explained = [explanation(item, expand) for item in items]
        columns = EXPLAINED_COLUMNS if expand else EXPLAINED_COLUMNS[:-1]
        out.items(explained, columns, env=lambda item: (item["name"], item["reference"]))
    elif expand:
        if out.format == "env":
            echo_env(env_pairs(items))
        else:
            out.items(items, EXPANDED_COLUMNS)
    else:
        out.items(items, RESOLVED_COLUMNS, env=lambda item: (item["name"], item["reference"]))
