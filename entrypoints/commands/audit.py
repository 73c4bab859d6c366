"""The audit trail and the compliance reports: `audit events|export|verify|prune`, `report …`.

`audit verify` asks the server; `audit verify --local` and `audit prune` work on the database
at the machine, as the operator.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from entrypoints.client import (
    Client,
    server_options,
    timeout_option,
    with_client,
    with_options,
)
from entrypoints.commands.exits import ExitCode
from entrypoints.commands.operator import OPERATOR, operator_container
from entrypoints.commands.output import Output, field, output_options, scope_text
from entrypoints.commands.references import parse_scope
from entrypoints.commands.secrets import SECRET_COLUMNS, reference_pair
from entrypoints.commands.times import parse_duration, parse_time

OUTCOMES = ("success", "denied", "not_found", "error")
EVENT_COLUMNS = (
    ("seq", field("seq")),
    ("time", field("time")),
    ("actor", field("actor")),
    ("action", field("action")),
    ("resource", field("resource")),
    ("outcome", field("outcome")),
    ("reason", field("reason")),
)


def filter_options(command: Any) -> Any:
    """The filters of `GET /audit/events` and `/audit/export`."""
    for decorator in reversed(
        (
            click.option("--actor", help="Who: user:alice, service:ci, …"),
            click.option("--secret", "secret_id", help="Events about this secret (its id)."),
            click.option("--resource", help="secret:<id>, scope:<type/id>, binding:<id>, …"),
            click.option("--scope", help="TYPE:ID: events in this scope and below it."),
            click.option("--action", help="secret.read_value, binding.create, …"),
            click.option("--outcome", type=click.Choice(OUTCOMES)),
            click.option("--since", help="ISO 8601 time, or a duration ago (24h)."),
            click.option("--until", help="ISO 8601 time, or a duration ago."),
        )
    ):
        command = decorator(command)
    return command


def filters(**given: Any) -> dict[str, Any]:
    params = {
        key: given[key]
        for key in ("actor", "resource", "action", "outcome")
        if given.get(key) is not None
    }
    if given.get("secret_id"):
        params["secret"] = given["secret_id"]
    if given.get("scope"):
        params |= parse_scope(given["scope"], "--scope").query()
    for key in ("since", "until"):
        if given.get(key):
            params[key] = ago(given[key], f"--{key}")
    return params


def ago(text: str, param_hint: str) -> str:
    """A time given as such, or as a duration before now (`24h`)."""
    try:
        delta = parse_duration(text, param_hint)
    except click.BadParameter:
        return parse_time(text, param_hint)
    return (datetime.now(UTC) - delta).isoformat()


@click.group()
def audit() -> None:
    """The audit trail: read it, export it, verify its hash chain.

    \b
      secretctl audit events --actor user:alice --since 24h
      secretctl audit export --format csv --file audit.csv
      secretctl audit verify
    """


@audit.command("events")
@filter_options
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--before-seq", type=int, help="Only events before this one (a cursor).")
@output_options
@with_client
def audit_events(
    client: Client, out: Output, limit: int, before_seq: int | None, **given: Any
) -> None:
    """Events, newest first, up to --limit (paged through); when more are left, the cursor
    to go on from is said on standard error.

    \b
      secretctl audit events --secret 0b6f… --action secret.read_value
      secretctl audit events --scope project:p-42 --outcome denied -o json
    """
    params = filters(**given)
    events: list[dict[str, Any]] = []
    cursor = before_seq
    while len(events) < limit:
        page_params = {**params, "limit": min(1000, limit - len(events))}
        if cursor is not None:
            page_params["before_seq"] = cursor
        page = client.json("GET", "/audit/events", params=page_params)
        events += page["items"]
        cursor = page["next_cursor"]
        if cursor is None or not page["items"]:
            break
    out.items(events, EVENT_COLUMNS, env=lambda event: (f"event_{event['seq']}", event["action"]))
    if cursor is not None and len(events) >= limit:
        click.echo(f"more events: --before-seq {cursor}", err=True)


@audit.command("export")
@filter_options
@click.option("--format", "file_format", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--file", "target", default="-", help="Write here [standard output].")
@timeout_option
@with_options(server_options)
def audit_export(
    file_format: str,
    target: str,
    timeout: float,
    addr: str | None,
    token: str | None,
    **given: Any,
) -> None:
    """Stream the matching events, oldest first, as JSON lines or CSV.

    \b
      secretctl audit export --since 30d --format csv --file audit.csv
    """
    client = Client(addr, token, timeout)
    params = {**filters(**given), "format": file_format}
    response = client.request("GET", "/audit/export", params=params, stream=True)
    chunks = client.chunks(response)
    if target == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    with open(target, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    click.echo(f"audit events written to {target}", err=True)


@audit.command("verify")
@click.option("--from-seq", type=int, help="First event to check [the first kept].")
@click.option("--to-seq", type=int, help="Last event to check [the last].")
@click.option("--local", is_flag=True, help="At the machine, on the database (no server).")
@timeout_option
@output_options
@with_options(server_options)
@click.pass_context
def audit_verify(
    ctx: click.Context,
    out: Output,
    from_seq: int | None,
    to_seq: int | None,
    local: bool,
    timeout: float,
    addr: str | None,
    token: str | None,
) -> None:
    """Check the hash chain and its signed checkpoints; exit 1 at the first broken link.

    \b
      secretctl audit verify                     # asks the server (auditors, admins)
      secretctl audit verify --from-seq 1000
      secretctl audit verify --timeout 1800      # a very long chain: wait 30 minutes
      secretctl audit verify --local             # the operator, on the database
    """
    bounds = {"from_seq": from_seq, "to_seq": to_seq}
    if local:
        result = verify_locally(ctx, **bounds)
    else:
        body = {key: value for key, value in bounds.items() if value is not None}
        result = Client(addr, token, timeout).json("POST", "/audit/verify", json=body)
    broken = result["broken"]
    if broken is not None:
        out.result(
            result, f"the audit chain is broken at event {broken['seq']}: {broken['problem']}"
        )
        sys.exit(int(ExitCode.FAILED))
    out.result(
        result,
        f"audit chain intact: {result['checked']} events ({result['first_seq']}.."
        f"{result['last_seq']})",
    )


def verify_locally(ctx: click.Context, **bounds: int | None) -> dict[str, Any]:
    with operator_container(ctx) as container:
        result = container.audit_service().verify(OPERATOR, **bounds)
    broken = result.broken
    return {
        "ok": broken is None,
        "checked": result.checked,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "broken": None if broken is None else {"seq": broken.seq, "problem": broken.problem},
    }


@audit.command("prune")
@click.option("--older-than", required=True, help="An age such as 400d, 12h or 30m.")
@output_options
@click.pass_context
def audit_prune(ctx: click.Context, out: Output, older_than: str) -> None:
    """At the machine: delete events older than the age given, up to the last signed
    checkpoint before it.

    \b
      secretctl audit prune --older-than 400d
    """
    age = parse_duration(older_than, "--older-than")
    with operator_container(ctx) as container:
        cutoff = container.clock().now() - age
        removed = container.audit_service().prune(OPERATOR, cutoff)
    out.result(
        {"pruned": removed, "older_than": cutoff.isoformat()},
        f"pruned {removed} audit events older than {cutoff.isoformat()}",
    )


# -- reports ------------------------------------------------------------------------------------


@click.group()
def report() -> None:
    """Compliance reports: what expires, what nobody reads, what is overdue, stale tokens.

    \b
      secretctl report expiring --days 14 --scope organization:acme
      secretctl report stale-tokens -o json
    """


def report_scope(scope: str | None) -> dict[str, str]:
    return parse_scope(scope, "--scope").query() if scope else {}


def secrets_report(path: str, unit: str, default: int, summary: str) -> Any:
    """A report command listing secrets: `--days N` (or `--hours`) and `--scope`."""

    @click.option(f"--{unit}", "amount", type=click.IntRange(0), default=default, show_default=True)
    @click.option("--scope", help="TYPE:ID: this scope and below it [all you can see].")
    @output_options
    @with_client
    def command(client: Client, out: Output, amount: int, scope: str | None) -> None:
        answer = client.json("GET", path, params={unit: amount, **report_scope(scope)})
        out.items(answer["items"], SECRET_COLUMNS, env=reference_pair)

    command.__doc__ = summary
    return command


report.command("expiring")(
    secrets_report(
        "/reports/expiring",
        "days",
        30,
        "Secrets that expire within --days.\n\n\b\n  secretctl report expiring --days 7",
    )
)
report.command("never-read")(
    secrets_report(
        "/reports/never-read",
        "days",
        90,
        "Secrets nobody read in --days.\n\n\b\n  secretctl report never-read --days 180",
    )
)
report.command("rotation-overdue")(
    secrets_report(
        "/reports/rotation-overdue",
        "hours",
        1,
        "Secrets whose scheduled rotation is more than --hours late, or failed.\n\n\b\n"
        "  secretctl report rotation-overdue --scope project:p-42",
    )
)


@report.command("stale-tokens")
@click.option("--days", type=click.IntRange(0), default=90, show_default=True)
@output_options
@with_client
def report_stale_tokens(client: Client, out: Output, days: int) -> None:
    """API tokens not used in --days (or never), with their service accounts.

    \b
      secretctl report stale-tokens --days 30
    """
    answer = client.json("GET", "/reports/stale-tokens", params={"days": days})
    columns = (
        ("account", field("account.principal")),
        ("scope", lambda item: scope_text(item["account"]["scope"])),
        ("token", field("token.id")),
        ("prefix", field("token.prefix")),
        ("last used", lambda item: item["token"]["last_used_at"] or "never"),
    )
    out.items(
        answer["items"],
        columns,
        env=lambda item: (f"token_{item['token']['id']}", item["account"]["principal"]),
    )


AUDIT_COMMANDS = (audit, report)
