"""`secretctl` client commands: talk to a running server over its REST API.

The server address and token come from `--addr`/`--token`, `SECRETS_ADDR`/`SECRETS_TOKEN`, or
what `secretctl login` stored (a 0600 file in the user's configuration directory).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import click
import requests

DEFAULT_ADDR = "http://127.0.0.1:8080"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "secretctl" / "credentials.json"


def stored_credentials() -> dict[str, str]:
    try:
        return dict(json.loads(credentials_path().read_text()))
    except (OSError, ValueError):
        return {}


def store_credentials(addr: str, token: str) -> Path:
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        json.dump({"addr": addr, "token": token}, handle)
    return path


class Client:
    """A thin REST client; errors print the server's code and message."""

    def __init__(self, addr: str | None, token: str | None) -> None:
        stored = stored_credentials()
        token = token or stored.get("token")
        if not token:
            raise click.ClickException("no token: run `secretctl login` or set SECRETS_TOKEN")
        self.addr = (addr or stored.get("addr") or DEFAULT_ADDR).rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        try:
            return self.session.request(method, f"{self.addr}/api/v1{path}", **kwargs)
        except requests.ConnectionError:
            raise click.ClickException(f"cannot reach the server at {self.addr}") from None

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        if response.status_code >= 400:
            raise click.ClickException(error_text(response))
        return response.json()


def error_text(response: requests.Response) -> str:
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
        raise click.BadParameter("use 'global' or TYPE:ID, e.g. project:p-42", param_hint="scope")
    return kind, scope_id


def scope_body(text: str) -> dict[str, str]:
    kind, scope_id = parse_scope(text)
    return {"type": kind} if kind == "global" else {"type": kind, "id": scope_id}


server_options = [
    click.option("--addr", envvar="SECRETS_ADDR", help=f"Server address [{DEFAULT_ADDR}]."),
    click.option("--token", envvar="SECRETS_TOKEN", help="Bearer token (SECRETS_TOKEN)."),
]
client_options = [
    *server_options,
    click.option("--scope", default="global", show_default=True, help="global or TYPE:ID"),
    click.option("--env", "environment", help="Environment (e.g. production)."),
]
context_options = [
    *server_options,
    click.option("--project", help="Project id (its team and organization come with it)."),
    click.option("--team", help="Team id, instead of a project."),
    click.option("--organization", help="Organization id, instead of a project."),
    click.option("--env", "environment", help="Environment (e.g. production)."),
]


def with_options(options: list[Any]) -> Any:
    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.command()
@click.option("--addr", envvar="SECRETS_ADDR", default=DEFAULT_ADDR, show_default=True)
@click.option("--token", help="The token; asked for (hidden) when omitted.")
def login(addr: str, token: str | None) -> None:
    """Check a token against the server and store it (mode 0600) for later commands."""
    token = token or click.prompt("Token", hide_input=True)
    me = Client(addr, token).json("GET", "/auth/whoami")
    path = store_credentials(addr.rstrip("/"), token)
    click.echo(f"logged in to {addr} as {me['principal']}; token stored in {path}")


@click.command()
@click.argument("name")
@click.option("--version", type=int, help="A specific version.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@with_options(client_options)
def get(
    name: str,
    version: int | None,
    as_json: bool,
    addr: str | None,
    token: str | None,
    scope: str,
    environment: str | None,
) -> None:
    """Print a secret's value."""
    kind, scope_id = parse_scope(scope)
    params = {"environment": environment, "version": version}
    answer = Client(addr, token).json(
        "GET",
        f"/scopes/{kind}/{scope_id}/secrets/{name}/value",
        params={key: value for key, value in params.items() if value is not None},
    )
    click.echo(json.dumps(answer, indent=2) if as_json else answer["value"])


# More than any server takes (64 KiB by default); a larger input is refused before it is sent.
MAX_VALUE_BYTES = 1024 * 1024


@click.command("set")
@click.argument("name")
@click.argument("stdin_marker", metavar="[-]", required=False)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the value from this file.",
)
@click.option(
    "--keep-newline",
    is_flag=True,
    help="Keep the newline that ends a value read from a pipe or a file (one \\n is dropped).",
)
@click.option("--allow-empty", is_flag=True, help="Store an empty value (refused otherwise).")
@click.option("--type", "secret_type", default="generic", show_default=True)
@click.option("--description", default="")
@click.option("--parent", help="TYPE:ID of the parent, to create the scope on first use.")
@with_options(client_options)
def set_(
    name: str,
    stdin_marker: str | None,
    from_file: Path | None,
    keep_newline: bool,
    allow_empty: bool,
    secret_type: str,
    description: str,
    parent: str | None,
    addr: str | None,
    token: str | None,
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
    """
    value_field = value_body(read_value(stdin_marker, from_file, keep_newline, allow_empty))
    kind, scope_id = parse_scope(scope)
    client = Client(addr, token)
    params = {"environment": environment} if environment else {}
    found = client.call("GET", f"/scopes/{kind}/{scope_id}/secrets/{name}", params=params)
    if found.status_code == 404:
        body: dict[str, Any] = {
            "name": name,
            **value_field,
            "type": secret_type,
            "description": description,
            "scope": scope_body(scope),
        }
        if parent:
            body["scope"]["parent"] = scope_body(parent)
        if environment:
            body["environment"] = environment
        secret = client.json("POST", "/secrets", json=body)
    elif found.status_code == 200:
        secret = client.json(
            "POST",
            f"/secrets/{found.json()['id']}/versions",
            json=value_field,
            headers={"If-Match": found.headers.get("ETag", "*")},
        )
    else:
        raise click.ClickException(error_text(found))
    click.echo(f"{secret['reference']} version {secret['current_version']} ({secret['id']})")


def read_value(
    stdin_marker: str | None, from_file: Path | None, keep_newline: bool, allow_empty: bool
) -> bytes:
    """The value `set` stores, from the prompt, standard input or a file; never an argument."""
    if stdin_marker not in (None, "-"):  # never echoed: it is likely the value itself
        raise click.UsageError(
            "a value is never an argument (other users see arguments in `ps`): type it at the "
            "prompt, pipe it, or give --from-file PATH"
        )
    if stdin_marker == "-" and from_file is not None:
        raise click.UsageError("read the value from standard input (-) or --from-file, not both")
    if from_file is not None:
        with from_file.open("rb") as handle:
            raw = limited(handle)
    elif stdin_marker == "-" or not stdin_is_terminal():
        raw = limited(sys.stdin.buffer)
    else:
        typed = click.prompt(
            "Value",
            hide_input=True,
            confirmation_prompt=True,
            default="" if allow_empty else None,
            show_default=False,
            err=True,
        )
        return str(typed).encode()
    if not keep_newline and raw.endswith(b"\n") and is_text(raw):
        raw = raw[:-1]
    if not raw and not allow_empty:
        raise click.ClickException("the value is empty: nothing stored (--allow-empty stores it)")
    return raw


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def limited(stream: Any) -> bytes:
    raw = bytes(stream.read(MAX_VALUE_BYTES + 1))
    if len(raw) > MAX_VALUE_BYTES:
        raise click.ClickException(f"the value is longer than {MAX_VALUE_BYTES} bytes")
    return raw


def is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def value_body(raw: bytes) -> dict[str, str]:
    """The `value` and `encoding` of a request body: UTF-8 text as it is, other bytes base64."""
    if is_text(raw):
        return {"value": raw.decode("utf-8"), "encoding": "utf-8"}
    return {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}


@click.command("list")
@click.option("--prefix", help="Only names starting with this.")
@click.option("--all-scopes", is_flag=True, help="Ignore --scope and list every scope.")
@with_options(client_options)
def list_(
    prefix: str | None,
    all_scopes: bool,
    addr: str | None,
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


def fetch_resolution(client: Client, include_values: bool, **context: str | None) -> list[Any]:
    params: dict[str, Any] = {key: value for key, value in context.items() if value}
    params["include_values"] = "true" if include_values else "false"
    return list(client.json("GET", "/resolve", params=params)["items"])


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@with_options(context_options)
def resolve(
    as_json: bool,
    addr: str | None,
    token: str | None,
    project: str | None,
    team: str | None,
    organization: str | None,
    environment: str | None,
) -> None:
    """Show the effective secrets of a context: which one wins each name, and what it shadows."""
    items = fetch_resolution(
        Client(addr, token),
        False,
        project=project,
        team=team,
        organization=organization,
        environment=environment,
    )
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        shadows = ", ".join(f"{s['scope']['type']}/{s['scope']['id']}" for s in item["shadows"])
        env = item["environment"] or "*"
        line = f"{item['name']}\t{item['scope']['type']}/{item['scope']['id']}\t{env}"
        click.echo(line + (f"\tshadows {shadows}" if shadows else ""))


def environment_variables(items: list[Any]) -> dict[str, str]:
    """Resolved secrets as variables: names must be valid, distinct, and every value present."""
    missing = [f"{item['name']} ({item['value_error']})" for item in items if item["value"] is None]
    if missing:
        raise click.ClickException("no value for: " + ", ".join(missing))
    variables: dict[str, str] = {}
    for item in items:
        name = item["name"].replace("-", "_").replace(".", "_")
        if not ENV_NAME.fullmatch(name):
            raise click.ClickException(f"'{item['name']}' cannot be an environment variable")
        if name in variables:
            raise click.ClickException(f"two secrets become the environment variable {name}")
        if item["encoding"] != "utf-8":
            raise click.ClickException(f"'{item['name']}' is binary; it cannot be a variable")
        variables[name] = item["value"]
    return variables


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--no-inherit-env", is_flag=True, help="Start from an empty environment.")
@with_options(context_options)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    no_inherit_env: bool,
    addr: str | None,
    token: str | None,
    project: str | None,
    team: str | None,
    organization: str | None,
    environment: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with the context's secrets as environment variables:
    `secretctl run --project p-42 --env production -- python app.py`."""
    items = fetch_resolution(
        Client(addr, token),
        True,
        project=project,
        team=team,
        organization=organization,
        environment=environment,
    )
    variables = environment_variables(items)
    base = {} if no_inherit_env else dict(os.environ)
    try:
        os.execvpe(command[0], list(command), {**base, **variables})  # noqa: S606
    except OSError as error:
        raise click.ClickException(f"cannot run {command[0]}: {error.strerror}") from None


CLIENT_COMMANDS = (login, get, set_, list_, resolve, run)
