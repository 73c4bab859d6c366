"""The client's own state: `login`, `logout`, and shell `completion`."""

from __future__ import annotations

import os
import sys

import click
from click.shell_completion import get_completion_class

from entrypoints.client import (
    ARGUMENT_WARNING,
    DEFAULT_ADDR,
    Client,
    credentials_path,
    store_credentials,
)
from entrypoints.commands.values import stdin_is_terminal

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.option("--addr", envvar="SECRETS_ADDR", default=DEFAULT_ADDR, show_default=True)
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the token from standard input (one line).",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="Insecure, kept for old scripts (others see arguments in `ps`): use --token-stdin.",
)
def login(addr: str, token_stdin: bool, token: str | None) -> None:
    """Check a token against the server and store it (mode 0600) for later commands. The token
    is read from standard input with --token-stdin, else taken from SECRETS_TOKEN, else asked
    for (hidden) at a terminal, else read from standard input.

    \b
      secretctl login --addr https://secrets.internal      # asks for the token
      secretctl token create ci -o json | jq -r .token | secretctl login --token-stdin --addr …
      SECRETS_TOKEN=… secretctl login --addr …
    """
    if token is not None and token_stdin:
        raise click.UsageError("--token and --token-stdin exclude each other")
    if token is not None:
        instead = "use --token-stdin, SECRETS_TOKEN or the prompt instead"
        click.echo(ARGUMENT_WARNING.format(instead=instead), err=True)
    elif token_stdin:
        token = sys.stdin.readline().strip()
    elif os.environ.get("SECRETS_TOKEN"):
        token = os.environ["SECRETS_TOKEN"]
    elif stdin_is_terminal():
        token = click.prompt("Token", hide_input=True, err=True)
    else:
        token = sys.stdin.readline().strip()
    if not token:
        raise click.UsageError("no token given")
    me = Client(addr, token).json("GET", "/auth/whoami")
    path = store_credentials(addr.rstrip("/"), token)
    click.echo(f"logged in to {addr} as {me['principal']}; token stored in {path}")


@click.command()
def logout() -> None:
    """Forget the token `login` stored (the token itself stays valid: revoke it to end it).

    \b
      secretctl logout
    """
    path = credentials_path()
    if path.exists():
        path.unlink()
        click.echo(f"removed {path}")
    else:
        click.echo("not logged in")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell code that completes secretctl's commands and options.

    \b
      eval "$(secretctl completion bash)"                  # in ~/.bashrc
      eval "$(secretctl completion zsh)"                   # in ~/.zshrc
      secretctl completion fish > ~/.config/fish/completions/secretctl.fish
    """
    root = ctx.find_root().command
    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(root, {}, "secretctl", "_SECRETCTL_COMPLETE").source())


SESSION_COMMANDS = (login, logout, completion)
