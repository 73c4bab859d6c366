"""Rotation: `rotate` now, and `rotation show|set|clear` for the schedule and the rotator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from entrypoints.client import Client, with_client
from entrypoints.commands.output import Output, output_options
from entrypoints.commands.references import parse_secret, secret_argument
from entrypoints.commands.secrets import path_of
from entrypoints.commands.times import parse_duration
from entrypoints.commands.values import read_value, value_body, value_options


@click.command()
@secret_argument
@value_options
@click.option(
    "--value", "with_value", is_flag=True, help="Rotate to a value you give (prompt or stdin)."
)
@output_options
@with_client
def rotate(
    client: Client,
    out: Output,
    secret: str,
    scope: str | None,
    environment: str | None,
    stdin_marker: str | None,
    from_file: Path | None,
    keep_newline: bool,
    allow_empty: bool,
    with_value: bool,
) -> None:
    """Rotate now: to a value you give (--value: typed at a hidden prompt or piped; `-`;
    --from-file), or to one the secret's rotation policy's rotator makes. The new version is
    pending, tested, then current; the old one stays readable as `previous` for the grace
    period. A failed rotation keeps the current value (exit 7).

    \b
      secretctl rotate DB_PASSWORD --scope project:p-42                 # the policy's rotator
      secretctl rotate OPENAI_API_KEY --scope project:p-42 --value      # asks for it
      printf %s "$NEW" | secretctl rotate OPENAI_API_KEY --scope project:p-42 -
    """
    body: dict[str, Any] = {}
    if with_value or stdin_marker is not None or from_file is not None:
        body = value_body(read_value(stdin_marker, from_file, keep_newline, allow_empty))
    path = path_of(client, parse_secret(secret, scope, environment))
    rotated = client.json("POST", f"{path}/rotate", json=body)
    out.result(rotated, f"{rotated['reference']} rotated to version {rotated['current_version']}")


@click.group()
def rotation() -> None:
    """A secret's rotation policy: when it rotates, with which rotator, and the grace period.

    \b
      secretctl rotation set DB_PASSWORD --scope project:p-42 --rotator random --every 30d
      secretctl rotation show DB_PASSWORD --scope project:p-42
      secretctl rotation clear DB_PASSWORD --scope project:p-42
    """


@rotation.command("show")
@secret_argument
@output_options
@with_client
def rotation_show(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """The policy, with its next and last runs and the last error.

    \b
      secretctl rotation show DB_PASSWORD --scope project:p-42 -o json
    """
    path = path_of(client, parse_secret(secret, scope, environment))
    out.record(client.json("GET", f"{path}/rotation-policy"))


@rotation.command("set")
@secret_argument
@click.option("--rotator", required=True, help="random, webhook, or a plugin's rotator.")
@click.option("--every", help="An interval: 12h, 30d, 4w.")
@click.option("--cron", help="Five cron fields, in UTC: '0 3 * * 1'.")
@click.option("--grace", help="How long the replaced version stays readable: 1h, 7d.")
@click.option(
    "--setting",
    "settings",
    multiple=True,
    help="KEY=VALUE for the rotator (a JSON value or text); repeatable.",
)
@output_options
@with_client
def rotation_set(
    client: Client,
    out: Output,
    secret: str,
    scope: str | None,
    environment: str | None,
    rotator: str,
    every: str | None,
    cron: str | None,
    grace: str | None,
    settings: tuple[str, ...],
) -> None:
    """Set the policy: --every or --cron, a --rotator and its --setting values.

    \b
      secretctl rotation set DB_PASSWORD --scope project:p-42 --rotator random --every 30d \\
        --setting length=40 --grace 1h
      secretctl rotation set BILLING_KEY --scope project:p-42 --rotator webhook \\
        --cron '0 3 * * 1' --setting target=billing
    """
    if (every is None) == (cron is None):
        raise click.UsageError("give one of --every or --cron")
    body: dict[str, Any] = {"rotator": rotator, "settings": rotator_settings(settings)}
    if every is not None:
        body["interval_seconds"] = int(parse_duration(every, "--every").total_seconds())
    else:
        body["cron"] = cron
    if grace is not None:
        body["grace_seconds"] = int(parse_duration(grace, "--grace").total_seconds())
    path = path_of(client, parse_secret(secret, scope, environment))
    policy = client.json("PUT", f"{path}/rotation-policy", json=body)
    out.result(policy, f"rotates with {rotator}; next run {policy['next_run_at']}")


def rotator_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter("use KEY=VALUE", param_hint="--setting")
        try:
            settings[key] = json.loads(text)
        except ValueError:
            settings[key] = text
    return settings


@rotation.command("clear")
@secret_argument
@output_options
@with_client
def rotation_clear(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """Stop rotating the secret on a schedule (rotate it now and then with `rotate`).

    \b
      secretctl rotation clear DB_PASSWORD --scope project:p-42
    """
    path = path_of(client, parse_secret(secret, scope, environment))
    client.request("DELETE", f"{path}/rotation-policy")
    out.result({"rotation_policy": None}, "no rotation schedule any more")


ROTATION_COMMANDS = (rotate, rotation)
