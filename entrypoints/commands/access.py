"""Who may do what: `binding`, `access SECRET`, `service-account`, `token`, `whoami`."""

from __future__ import annotations

import uuid
from typing import Any

import click

from entrypoints.client import Client, with_client
from entrypoints.commands.exits import CommandError, ExitCode
from entrypoints.commands.output import Output, field, output_options, scope_text
from entrypoints.commands.references import find_secret, parse_scope, parse_secret
from entrypoints.commands.times import parse_time

ROLES = ("viewer", "reader", "editor", "admin", "auditor")
BINDING_COLUMNS = (
    ("id", field("id")),
    ("principal", field("principal")),
    ("role", field("role")),
    ("scope", lambda item: scope_text(item["scope"])),
    ("narrowed to", lambda item: item["name_pattern"] or item["secret_id"] or ""),
    ("expires", field("expires_at")),
)
ACCOUNT_COLUMNS = (
    ("id", field("id")),
    ("principal", field("principal")),
    ("scope", lambda item: scope_text(item["scope"])),
    ("description", field("description")),
    ("created", field("created_at")),
)
TOKEN_COLUMNS = (
    ("id", field("id")),
    ("prefix", field("prefix")),
    ("description", field("description")),
    ("expires", field("expires_at")),
    ("revoked", field("revoked_at")),
    ("last used", field("last_used_at")),
)


def as_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


# -- role bindings ------------------------------------------------------------------------------


@click.group()
def binding() -> None:
    """Role bindings: a principal holds a role at a scope (and below it).

    \b
      secretctl binding create --principal user:alice --role editor --scope project:p-42
      secretctl binding list --scope project:p-42
      secretctl binding delete 5f0c…
    """


@binding.command("create")
@click.option("--principal", required=True, help="user:<id>, group:<id> or service:<name>")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--scope", required=True, help="global or TYPE:ID")
@click.option("--secret", help="Narrow it to one secret of the scope (an id or a reference).")
@click.option("--name-pattern", help="Narrow it to names matching this glob (* and ?).")
@click.option("--expires-at", help="ISO 8601 time, or a duration from now (8h).")
@output_options
@with_client
def binding_create(
    client: Client,
    out: Output,
    principal: str,
    role: str,
    scope: str,
    secret: str | None,
    name_pattern: str | None,
    expires_at: str | None,
) -> None:
    """Grant a role at a scope (admins of the scope).

    \b
      secretctl binding create --principal group:ml --role reader --scope project:p-42 \\
        --name-pattern 'OPENAI_*' --expires-at 30d
    """
    where = parse_scope(scope)
    body: dict[str, Any] = {"principal": principal, "role": role, "scope": where.body()}
    if secret:
        body["secret_id"] = find_secret(client, parse_secret(secret, str(where), None))["id"]
    if name_pattern:
        body["name_pattern"] = name_pattern
    if expires_at:
        body["expires_at"] = parse_time(expires_at, "--expires-at")
    made = client.json("POST", "/role-bindings", json=body)
    out.result(made, f"granted {role} at {scope_text(made['scope'])} to {principal} ({made['id']})")


@binding.command("list")
@click.option("--scope", help="Bindings held at this scope (its admins).")
@click.option("--principal", help="Only this principal's (your own, without --scope).")
@output_options
@with_client
def binding_list(client: Client, out: Output, scope: str | None, principal: str | None) -> None:
    """Bindings at a scope, or a principal's own (yours: `--principal` with your name).

    \b
      secretctl binding list --scope organization:acme -o json
      secretctl binding list --principal "$(secretctl whoami -o env | sed -n 's/^PRINCIPAL=//p')"
    """
    if scope is None and principal is None:
        raise click.UsageError("give --scope TYPE:ID, or --principal NAME")
    params: dict[str, Any] = parse_scope(scope).query() if scope else {}
    if principal:
        params["principal"] = principal
    out.items(
        client.pages("/role-bindings", params),
        BINDING_COLUMNS,
        env=lambda item: (f"binding_{item['id']}", f"{item['principal']} {item['role']}"),
    )


@binding.command("delete")
@click.argument("binding_id", metavar="ID")
@output_options
@with_client
def binding_delete(client: Client, out: Output, binding_id: str) -> None:
    """Remove a binding (admins of its scope).

    \b
      secretctl binding delete 5f0c9a4e-…
    """
    client.request("DELETE", f"/role-bindings/{binding_id}")
    out.result({"id": binding_id, "deleted": True}, f"deleted binding {binding_id}")


@click.command()
@click.argument("secret")
@click.option("--scope", help="global or TYPE:ID, for a bare NAME [global].")
@click.option("--env", "environment", help="The environment of the secret named.")
@output_options
@with_client
def access(
    client: Client, out: Output, secret: str, scope: str | None, environment: str | None
) -> None:
    """Who can read SECRET's value, and why: the binding (or rule) that lets each one.

    \b
      secretctl access OPENAI_API_KEY --scope project:p-42 --env production
    """
    found = find_secret(client, parse_secret(secret, scope, environment))
    items = client.json("GET", f"/secrets/{found['id']}/access")["items"]
    columns = (
        ("principal", field("principal")),
        ("role", field("role")),
        ("via", field("via")),
        ("binding", field("binding_id")),
    )
    out.items(items, columns, env=lambda item: (item["principal"], item["via"]))


# -- service accounts and their tokens ----------------------------------------------------------


def account_of(client: Client, account: str, scope: str | None) -> dict[str, Any]:
    """A service account by id, or by name in --scope (global by default)."""
    account_id = as_uuid(account)
    if account_id is not None:
        return dict(client.json("GET", f"/service-accounts/{account_id}"))
    owner = parse_scope(scope or "global")
    for item in client.pages("/service-accounts", owner.query()):
        if item["name"] == account:
            return dict(item)
    raise CommandError(f"not_found: no service account '{account}' in {owner}", ExitCode.NOT_FOUND)


def account_argument(command: Any) -> Any:
    command = click.option("--scope", help="The account's scope, for a NAME [global].")(command)
    return click.argument("account")(command)


@click.group("service-account")
def service_account() -> None:
    """Service accounts: the identities of programs, with API tokens (`token`).

    \b
      secretctl service-account create deployer --scope project:p-42
      secretctl token create deployer --scope project:p-42 --expires-at 90d
    """


@service_account.command("create")
@click.argument("name")
@click.option("--scope", default="global", show_default=True, help="The owner scope.")
@click.option("--description", default="")
@output_options
@with_client
def service_account_create(
    client: Client, out: Output, name: str, scope: str, description: str
) -> None:
    """Create a service account owned by a scope (its admins); bind it roles with `binding`.

    \b
      secretctl service-account create deployer --scope project:p-42 --description "CI"
      secretctl binding create --principal service:deployer@project:p-42 --role reader \\
        --scope project:p-42
    """
    body = {"name": name, "scope": parse_scope(scope).body(), "description": description}
    made = client.json("POST", "/service-accounts", json=body)
    out.result(made, f"created {made['principal']} ({made['id']})")


@service_account.command("list")
@click.option("--scope", default="global", show_default=True, help="The owner scope.")
@output_options
@with_client
def service_account_list(client: Client, out: Output, scope: str) -> None:
    """Service accounts owned by a scope (its admins).

    \b
      secretctl service-account list --scope project:p-42
    """
    out.items(
        client.pages("/service-accounts", parse_scope(scope).query()),
        ACCOUNT_COLUMNS,
        env=lambda item: (item["name"], item["principal"]),
    )


@service_account.command("delete")
@account_argument
@output_options
@with_client
def service_account_delete(client: Client, out: Output, account: str, scope: str | None) -> None:
    """Delete an account (an id, or a NAME with --scope), its tokens and its bindings.

    \b
      secretctl service-account delete deployer --scope project:p-42
    """
    found = account_of(client, account, scope)
    client.request("DELETE", f"/service-accounts/{found['id']}")
    out.result({**found, "deleted": True}, f"deleted {found['principal']}")


@click.group()
def token() -> None:
    """API tokens of a service account: issued once, revoked at once.

    \b
      secretctl token create deployer --scope project:p-42 --expires-at 90d
      secretctl token list deployer --scope project:p-42
      secretctl token revoke deployer 1d2e… --scope project:p-42
    """


@token.command("create")
@account_argument
@click.option("--description", default="")
@click.option("--expires-at", help="ISO 8601 time, or a duration from now (90d).")
@output_options
@with_client
def token_create(
    client: Client,
    out: Output,
    account: str,
    scope: str | None,
    description: str,
    expires_at: str | None,
) -> None:
    """Issue a token for ACCOUNT: printed once (as `export SECRETS_TOKEN=…` for people), only
    its hash is kept.

    \b
      secretctl token create deployer --scope project:p-42 --expires-at 90d
      secretctl token create deployer --scope project:p-42 -o json | jq -r .token
    """
    found = account_of(client, account, scope)
    body: dict[str, Any] = {"description": description}
    if expires_at:
        body["expires_at"] = parse_time(expires_at, "--expires-at")
    issued = client.json("POST", f"/service-accounts/{found['id']}/tokens", json=body)
    if out.for_people:
        click.echo(f"token {issued['id']} for {found['principal']} (shown once):", err=True)
        click.echo(f"export SECRETS_TOKEN={issued['token']}")
    else:
        out.record(issued)


@token.command("list")
@account_argument
@output_options
@with_client
def token_list(client: Client, out: Output, account: str, scope: str | None) -> None:
    """ACCOUNT's tokens (never the tokens themselves): prefix, expiry, revocation, last use.

    \b
      secretctl token list deployer --scope project:p-42
    """
    found = account_of(client, account, scope)
    items = client.json("GET", f"/service-accounts/{found['id']}/tokens")["items"]
    out.items(items, TOKEN_COLUMNS, env=lambda item: (f"token_{item['id']}", item["prefix"]))


@token.command("revoke")
@account_argument
@click.argument("token_id", metavar="TOKEN_ID")
@output_options
@with_client
def token_revoke(
    client: Client, out: Output, account: str, scope: str | None, token_id: str
) -> None:
    """Revoke one of ACCOUNT's tokens; it stops working at once.

    \b
      secretctl token revoke deployer 1d2e… --scope project:p-42
    """
    found = account_of(client, account, scope)
    client.request("DELETE", f"/service-accounts/{found['id']}/tokens/{token_id}")
    out.result({"id": token_id, "revoked": True}, f"revoked token {token_id}")


@click.command()
@output_options
@with_client
def whoami(client: Client, out: Output) -> None:
    """Who your token stands for: the principal, its kind and groups.

    \b
      secretctl whoami -o json
    """
    me = client.json("GET", "/auth/whoami")
    out.record(me)


ACCESS_COMMANDS = (binding, access, service_account, token, whoami)
