"""Secrets: `set`, `get`, `list`, `describe`, `edit`, `delete`, `restore`, `purge`."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from entrypoints.client import Client, api_error, with_client
from entrypoints.commands.exits import CommandError
from entrypoints.commands.output import Output, field, output_options, scope_text
from entrypoints.commands.references import (
    SecretRef,
    find_secret,
    parse_scope,
    parse_secret,
    secret_argument,
    value_request,
)
from entrypoints.commands.times import parse_time
from entrypoints.commands.values import confirmed, read_value, value_body, value_options

SECRET_COLUMNS = (
    ("scope", lambda item: scope_text(item["scope"])),
    ("name", field("name")),
    ("env", lambda item: item["environment"] or "*"),
    ("version", lambda item: f"v{item['current_version']}"),
    ("type", field("type")),
    ("id", field("id")),
)


def reference_pair(item: dict[str, Any]) -> tuple[str, str]:
    return item["name"], item["reference"]


def path_of(client: Client, ref: SecretRef) -> str:
    """`/secrets/{id}` of the secret named, looked up by name when it is not an id."""
    secret_id = ref.id if ref.id is not None else find_secret(client, ref)["id"]
    return f"/secrets/{secret_id}"


@click.command("set")
@click.argument("name")
@value_options
@click.option("--type", "secret_type", default="generic", show_default=True)
@click.option("--description", default="")
@click.option("--parent", help="TYPE:ID of the parent, to create the scope on first use.")
@click.option("--scope", default="global", show_default=True, help="global or TYPE:ID")
@click.option("--env", "environment", help="Environment (e.g. production).")
@output_options
@with_client
def set_(
    client: Client,
    out: Output,
    name: str,
    stdin_marker: str | None,
    from_file: Path | None,
    keep_newline: bool,
    allow_empty: bool,
    secret_type: str,
    description: str,
    parent: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Create a secret or write its next version.

    The value is never an argument, which other users of the machine can read (`ps`): it is
    typed at a hidden prompt (twice) when standard input is a terminal, read from standard
    input when it is not (or with `-`), or read from --from-file PATH. One newline (\\n) ending
    a piped value or a file is dropped, as `echo` and editors add one; --keep-newline keeps it.
    A value that is not UTF-8 text is sent as it is (base64 on the wire), nothing dropped. An
    empty value is refused unless --allow-empty.

    \b
      secretctl set OPENAI_API_KEY --scope project:p-42          # asks for it
      printf %s "$VALUE" | secretctl set DB_PASSWORD --scope project:p-42
      secretctl set TLS_CERT --from-file cert.pem --type certificate
      secretctl set secret://project/p-42/OPENAI_API_KEY --env production < key.txt
    """
    value_field = value_body(read_value(stdin_marker, from_file, keep_newline, allow_empty))
    ref = parse_secret(name, scope, environment)
    if ref.id is not None:
        found = client.call("GET", f"/secrets/{ref.id}")
    else:
        found = client.call("GET", ref.path, params=ref.query())
    if found.status_code == 404 and ref.scope is not None:
        body: dict[str, Any] = {
            "name": ref.name,
            **value_field,
            "type": secret_type,
            "description": description,
            "scope": ref.scope.body(),
        }
        if parent:
            body["scope"]["parent"] = parse_scope(parent, "--parent").body()
        if ref.environment:
            body["environment"] = ref.environment
        secret = client.json("POST", "/secrets", json=body)
    elif found.status_code == 200:
        secret = client.json(
            "POST",
            f"/secrets/{found.json()['id']}/versions",
            json=value_field,
            headers={"If-Match": found.headers.get("ETag", "*")},
        )
    else:
        raise api_error(found)
    out.result(
        secret, f"{secret['reference']} version {secret['current_version']} ({secret['id']})"
    )


@click.command()
@secret_argument
@click.option("--version", type=int, help="A specific version [the current one].")
@click.option("--raw", is_flag=True, help="Write the value's bytes as they are, no newline.")
@click.option("--expand", is_flag=True, help="Replace each ${secret://…} with the value it names.")
@output_options
@with_client
def get(
    client: Client,
    out: Output,
    secret: str,
    scope: str | None,
    environment: str | None,
    version: int | None,
    raw: bool,
    expand: bool,
) -> None:
    """Print a secret's value (followed by a newline; --raw writes the bytes alone).

    A value that is not UTF-8 text is never printed as base64 silently: --raw writes its bytes,
    -o json shows it base64 with `"encoding": "base64"`.

    \b
      secretctl get OPENAI_API_KEY --scope project:p-42 --env production
      secretctl get secret://project/p-42/OPENAI_API_KEY --version 1
      secretctl get 'secret://project/p-42/OPENAI_API_KEY?env=production&stage=previous'
      secretctl get TLS_KEY --scope project:p-42 --raw > tls.key
      eval "$(secretctl get DB_PASSWORD --scope project:p-42 -o env)"
    """
    path, params = value_request(parse_secret(secret, scope, environment, versions=True), version)
    if expand:
        params["expand"] = "true"
    answer = client.json("GET", path, params=params)
    binary = answer["encoding"] == "base64"
    if raw:
        data = base64.b64decode(answer["value"]) if binary else answer["value"].encode()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif out.format in ("json", "yaml"):
        out.data(answer)
    elif binary:
        size = len(base64.b64decode(answer["value"]))
        raise CommandError(
            f"{answer['name']} is binary ({size} bytes): --raw writes its bytes, -o json shows "
            "them base64"
        )
    elif out.format == "env":
        out.items([answer], (), env=lambda item: (item["name"], item["value"]))
    else:
        click.echo(answer["value"])


@click.command("list")
@click.option("--scope", default="global", show_default=True, help="global or TYPE:ID")
@click.option("--all-scopes", is_flag=True, help="Ignore --scope: every scope you can see.")
@click.option("--env", "environment", help="Only this environment.")
@click.option("--prefix", help="Only names starting with this.")
@click.option("--type", "secret_type", help="Only secrets of this type.")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE; repeat to require several.")
@click.option("--deleted", is_flag=True, help="Soft-deleted secrets instead of live ones.")
@output_options
@with_client
def list_(
    client: Client,
    out: Output,
    scope: str,
    all_scopes: bool,
    environment: str | None,
    prefix: str | None,
    secret_type: str | None,
    tags: tuple[str, ...],
    deleted: bool,
) -> None:
    """List secrets' metadata (never values), every page of it.

    \b
      secretctl list --scope project:p-42
      secretctl list --all-scopes --type aws_credentials -o json
      secretctl list --scope project:p-42 -o env     # NAME=secret://… references
    """
    params: dict[str, Any] = {} if all_scopes else parse_scope(scope).query()
    optional = {"environment": environment, "prefix": prefix, "type": secret_type}
    params |= {key: value for key, value in optional.items() if value}
    if tags:
        params["tag"] = list(tags)
    if deleted:
        params["deleted"] = "true"
    out.items(client.pages("/secrets", params), SECRET_COLUMNS, env=reference_pair)


@click.command()
@secret_argument
@output_options
@with_client
def describe(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """A secret's metadata: type, tags, versions, expiry, who changed it and when.

    \b
      secretctl describe OPENAI_API_KEY --scope project:p-42 --env production
      secretctl describe 0b6f…-uuid -o json
    """
    out.record(find_secret(client, parse_secret(secret, scope, environment), deleted=True))


@click.command()
@secret_argument
@click.option("--description", help="A new description.")
@click.option("--consumer", help="What uses it (llm_model, mcp_server, git_provider, …).")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE to add or change; repeatable.")
@click.option("--untag", multiple=True, help="KEY to remove; repeatable.")
@click.option("--expires-at", help="ISO 8601 time, a duration from now (30d), or 'never'.")
@click.option("--not-before", help="ISO 8601 time, a duration from now, or 'none'.")
@click.option("--max-versions", help="Versions to keep, or 'default'.")
@output_options
@with_client
def edit(
    client: Client,
    out: Output,
    secret: str,
    scope: str | None,
    environment: str | None,
    description: str | None,
    consumer: str | None,
    tags: tuple[str, ...],
    untag: tuple[str, ...],
    expires_at: str | None,
    not_before: str | None,
    max_versions: str | None,
) -> None:
    """Change a secret's metadata (never its value: see `set`). A change made by someone else
    since it was read is refused (exit 5), not overwritten.

    \b
      secretctl edit OPENAI_API_KEY --scope project:p-42 --description "billing key" --tag team=ml
      secretctl edit secret://project/p-42/OPENAI_API_KEY --expires-at 90d --max-versions 10
      secretctl edit OPENAI_API_KEY --scope project:p-42 --expires-at never --untag team
    """
    current = find_secret(client, parse_secret(secret, scope, environment))
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if consumer is not None:
        changes["consumer"] = consumer
    if tags or untag:
        changes["tags"] = edited_tags(current["tags"], tags, untag)
    if expires_at is not None:
        changes["expires_at"] = (
            None if expires_at == "never" else parse_time(expires_at, "--expires-at")
        )
    if not_before is not None:
        changes["not_before"] = (
            None if not_before == "none" else parse_time(not_before, "--not-before")
        )
    if max_versions is not None:
        changes["max_versions"] = None if max_versions == "default" else whole(max_versions)
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    headers = {"If-Match": current["_etag"]} if current.get("_etag") else {}
    changed = client.json("PATCH", f"/secrets/{current['id']}", json=changes, headers=headers)
    out.result(changed, f"{changed['reference']} changed ({', '.join(sorted(changes))})")


def edited_tags(
    tags: dict[str, str], add: tuple[str, ...], remove: tuple[str, ...]
) -> dict[str, str]:
    result = dict(tags)
    for pair in add:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter("use KEY=VALUE", param_hint="--tag")
        result[key] = value
    for key in remove:
        result.pop(key, None)
    return result


def whole(text: str) -> int:
    if not text.isdigit():
        raise click.BadParameter("a number of versions, or 'default'", param_hint="--max-versions")
    return int(text)


@click.command()
@secret_argument
@output_options
@with_client
def delete(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """Soft-delete a secret: hidden, its name kept, restorable until it is purged.

    \b
      secretctl delete OLD_KEY --scope project:p-42
      secretctl restore OLD_KEY --scope project:p-42     # changed your mind
    """
    deleted = client.json("DELETE", path_of(client, parse_secret(secret, scope, environment)))
    until = f"; restore it until {deleted['purge_after']}" if deleted.get("purge_after") else ""
    out.result(deleted, f"deleted {deleted['reference']}{until}")


@click.command()
@secret_argument
@output_options
@with_client
def restore(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """Bring a soft-deleted secret back, with every version.

    \b
      secretctl restore OLD_KEY --scope project:p-42
    """
    found = find_secret(client, parse_secret(secret, scope, environment), deleted=True)
    restored = client.json("POST", f"/secrets/{found['id']}/restore")
    out.result(restored, f"restored {restored['reference']}")


@click.command()
@secret_argument
@click.option("--yes", is_flag=True, help="Do not ask: this cannot be undone.")
@output_options
@with_client
def purge(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None, yes: bool
) -> None:
    """Destroy a soft-deleted secret for good: its values in the backend, then its records.

    \b
      secretctl delete OLD_KEY --scope project:p-42
      secretctl purge OLD_KEY --scope project:p-42 --yes
    """
    found = find_secret(client, parse_secret(secret, scope, environment), deleted=True)
    confirmed(yes, f"Destroy {found['reference']} and every version of it for good?")
    client.request("POST", f"/secrets/{found['id']}/purge")
    out.result({"id": found["id"], "purged": True}, f"purged {found['reference']}")


SECRET_COMMANDS = (set_, get, list_, describe, edit, delete, restore, purge)
