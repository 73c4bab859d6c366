"""A secret's versions: `versions` (the history), `rollback`, `version disable|enable|destroy`."""

from __future__ import annotations

import click

from entrypoints.client import Client, with_client
from entrypoints.commands.output import Output, field, output_options
from entrypoints.commands.references import parse_secret, secret_argument
from entrypoints.commands.secrets import path_of
from entrypoints.commands.values import confirmed

VERSION_COLUMNS = (
    ("version", field("version")),
    ("stage", field("stage")),
    ("state", field("state")),
    ("backend", field("backend")),
    ("created", field("created_at")),
    ("by", field("created_by")),
    ("expires", field("expires_at")),
    ("not before", field("not_before")),
)


@click.command()
@secret_argument
@output_options
@with_client
def versions(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """A secret's versions, oldest first: stage (current, previous, pending), state, validity,
    backend, who made each and when. Values are never shown: `get --version N` reads one.

    \b
      secretctl versions OPENAI_API_KEY --scope project:p-42 --env production
    """
    path = path_of(client, parse_secret(secret, scope, environment))
    items = client.json("GET", f"{path}/versions")["items"]
    out.items(items, VERSION_COLUMNS, env=lambda item: (f"v{item['version']}", item["state"]))


@click.command()
@secret_argument
@click.argument("number", metavar="VERSION", type=click.IntRange(1))
@output_options
@with_client
def rollback(
    client: Client,
    out: Output,
    secret: str,
    scope: str | None,
    environment: str | None,
    number: int,
) -> None:
    """Make VERSION's value current again, as a new version (the history stays whole).

    \b
      secretctl rollback OPENAI_API_KEY 3 --scope project:p-42 --env production
    """
    path = path_of(client, parse_secret(secret, scope, environment))
    rolled = client.json("POST", f"{path}/rollback", json={"version": number})
    out.result(
        rolled,
        f"{rolled['reference']} version {rolled['current_version']} has version {number}'s value",
    )


@click.group()
def version() -> None:
    """One version of a secret: stop serving it, serve it again, or destroy its value.

    \b
      secretctl version disable OPENAI_API_KEY 2 --scope project:p-42
      secretctl version destroy OPENAI_API_KEY 2 --scope project:p-42 --yes
    """


def version_change(action: str, summary: str, *, destructive: bool = False) -> click.Command:
    @secret_argument
    @click.argument("number", metavar="VERSION", type=click.IntRange(1))
    @output_options
    @with_client
    def change(
        client: Client,
        out: Output,
        secret: str,
        scope: str | None,
        environment: str | None,
        number: int,
        yes: bool = False,
    ) -> None:
        path = path_of(client, parse_secret(secret, scope, environment))
        if destructive:
            confirmed(yes, f"Destroy the value of version {number} for good?")
        changed = client.json("POST", f"{path}/versions/{number}/{action}")
        out.result(changed, f"version {number}: {changed['state']}")

    if destructive:
        change = click.option("--yes", is_flag=True, help="Do not ask: this cannot be undone.")(
            change
        )
    return version.command(action, help=summary)(change)


version_change(
    "disable",
    "Stop serving VERSION (not the current or a pending one); `enable` undoes it.\n\n\b\n"
    "  secretctl version disable OPENAI_API_KEY 2 --scope project:p-42",
)
version_change(
    "enable",
    "Serve a disabled VERSION again.\n\n\b\n"
    "  secretctl version enable OPENAI_API_KEY 2 --scope project:p-42",
)
version_change(
    "destroy",
    "Destroy VERSION's value in its backend for good (admins); the version's record stays.\n\n"
    "\b\n  secretctl version destroy OPENAI_API_KEY 2 --scope project:p-42 --yes",
    destructive=True,
)

VERSION_COMMANDS = (versions, rollback, version)
