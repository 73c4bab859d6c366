"""What the `test_cli_*` modules share: `secretctl` run in-process (click's runner) against the
whole app served over real HTTP on loopback, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import shlex
from typing import Any

from click.testing import CliRunner, Result

from entrypoints.cli import main
from tests.e2e.conftest import TOKEN


def secretctl(server: str, *args: str, stdin: str | bytes | None = None, **env: str) -> Result:
    """`secretctl ARGS` as the root caller (or `SECRETS_TOKEN=…` in `env`), piped `stdin`."""
    environment = {
        "SECRETS_ADDR": server,
        "SECRETS_TOKEN": TOKEN,
        "SECRETCTL_RETRIES": "0",
        "COLUMNS": "200",
        **env,
    }
    return CliRunner().invoke(
        main, list(args), input=stdin, env=environment, catch_exceptions=False
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def rows(result: Result) -> list[list[str]]:
    """The tab-separated rows `-o table` prints off a terminal."""
    return [line.split("\t") for line in ok(result).stdout.splitlines()]


def env_lines(result: Result) -> dict[str, str]:
    """`-o env` as a dict (values unquoted as a shell would)."""

    pairs = [shlex.split(line)[0].split("=", 1) for line in ok(result).stdout.splitlines()]
    return dict(pairs)
