"""The REST client of `secretctl`'s client commands: the server's address and token, one HTTP
session that retries what is safe to retry, and the server's errors as exit codes.

The address and token come from `--addr`/`--token`, `SECRETS_ADDR`/`SECRETS_TOKEN`, or what
`secretctl login` stored (a 0600 file in the user's configuration directory).

A call waits `SECRETCTL_TIMEOUT` seconds for an answer (30; a long-running call such as `audit
verify` or an import waits longer, and its `--timeout` says how long). A server that did not
answer in time is said to be so, not to be unreachable: it may still be working.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import requests
from click.core import ParameterSource
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from entrypoints.commands.exits import CommandError, ExitCode, exit_code_for_status

DEFAULT_ADDR = "http://127.0.0.1:8080"
# Calls that may be sent twice: a retry after a lost answer changes nothing. A POST never is,
# but a connection that was refused (nothing sent) is retried whatever the method.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = (502, 503, 504)
RETRIES_ENV = "SECRETCTL_RETRIES"
DEFAULT_RETRIES = 3
PAGE_SIZE = 500  # the most the API gives in one page
TIMEOUT_ENV = "SECRETCTL_TIMEOUT"
DEFAULT_TIMEOUT = 30.0  # seconds a call waits for its answer, unless it says otherwise
LONG_TIMEOUT = 600.0  # what a long-running call (`audit verify`, `audit export`) waits


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


def timeout_from_environment() -> float | None:
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise CommandError(f"{TIMEOUT_ENV} must be a number of seconds above 0", ExitCode.USAGE)
    return seconds


def timed_out(error: BaseException) -> bool:
    """Whether a request failed because its answer did not come in time, the connection being
    made: a read timeout, raised as such or (retries exhausted) as a connection error."""
    if isinstance(error, requests.ReadTimeout):
        return True
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, ReadTimeoutError)


def retry_policy() -> Retry:
    """Up to `SECRETCTL_RETRIES` (3) more tries, 0, 1 and 2 s apart (or as `Retry-After` says),
    on a refused or dropped connection and on 502, 503 and 504, for idempotent calls."""
    try:
        retries = int(os.environ.get(RETRIES_ENV, DEFAULT_RETRIES))
    except ValueError:
        raise CommandError(f"{RETRIES_ENV} must be a number", ExitCode.USAGE) from None
    return Retry(
        total=retries,
        backoff_factor=0.5,
        backoff_max=10,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=IDEMPOTENT,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class Client:
    """The server's REST API. Errors become `CommandError`s: `code: message` and the exit code
    of the status (see `entrypoints.commands.exits`)."""

    def __init__(self, addr: str | None, token: str | None, timeout: float | None = None) -> None:
        """`timeout`: the command's `--timeout`, when it has one and it was given."""
        stored = stored_credentials()
        token = token or stored.get("token")
        if not token:
            raise CommandError(
                "no token: run `secretctl login` or set SECRETS_TOKEN", ExitCode.NOT_ALLOWED
            )
        self.addr = (addr or stored.get("addr") or DEFAULT_ADDR).rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        adapter = HTTPAdapter(max_retries=retry_policy())
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.timeout = timeout
        self.environment_timeout = timeout_from_environment()
        self.waited = DEFAULT_TIMEOUT  # what the last call waited for its answer

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer, whatever its status; only a server that cannot be reached, or did not
        answer in time, is an error. The call waits the command's `--timeout`, else
        `SECRETCTL_TIMEOUT`, else its own `timeout` (30 s when it has none)."""
        seconds = (
            self.timeout or self.environment_timeout or kwargs.get("timeout") or DEFAULT_TIMEOUT
        )
        kwargs["timeout"] = self.waited = seconds
        try:
            return self.session.request(method, f"{self.addr}/api/v1{path}", **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise self.failure(error, seconds) from None

    def failure(self, error: BaseException, seconds: float) -> CommandError:
        """What a request that failed without an answer says: that the server did not answer
        within the time it was given (and how to give it longer), or that it cannot be
        reached."""
        if not timed_out(error):
            return CommandError(f"cannot reach the server at {self.addr}", ExitCode.UNAVAILABLE)
        longer = f"--timeout SECONDS (or {TIMEOUT_ENV})" if self.timeout else TIMEOUT_ENV
        return CommandError(
            f"the server at {self.addr} did not answer within {seconds:g} s (it may still be "
            f"working on it): give it longer with {longer}",
            ExitCode.UNAVAILABLE,
        )

    def chunks(self, response: requests.Response, size: int = 64 * 1024) -> Iterator[bytes]:
        """A streamed answer's body, a lost connection or a pause longer than the timeout
        being a `CommandError` as in `call`."""
        try:
            yield from response.iter_content(size)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise self.failure(error, self.waited) from None

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A successful answer, or `CommandError`."""
        response = self.call(method, path, **kwargs)
        if response.status_code >= 400:
            raise api_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, page after page."""
        page, seen = 1, 0
        while True:
            answer = self.json("GET", path, params={**params, "page": page, "page_size": PAGE_SIZE})
            yield from answer["items"]
            seen += len(answer["items"])
            if not answer["items"] or seen >= answer["total"]:
                return
            page += 1


def error_text(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def api_error(response: requests.Response) -> CommandError:
    return CommandError(error_text(response), exit_code_for_status(response.status_code))


ARGUMENT_WARNING = (
    "WARNING! A token given with --token can be read by anyone on this machine (ps) and stays "
    "in the shell's history: {instead}."
)


def warn_of_an_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """`--token`'s callback: a token typed on the command line (not taken from SECRETS_TOKEN)
    is still used, with a warning on standard error, as `docker login -p` does."""
    if value and ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        instead = "set SECRETS_TOKEN or run `secretctl login` instead"
        click.echo(ARGUMENT_WARNING.format(instead=instead), err=True)
    return value


server_options = [
    click.option("--addr", envvar="SECRETS_ADDR", help=f"Server address [{DEFAULT_ADDR}]."),
    click.option(
        "--token",
        envvar="SECRETS_TOKEN",
        callback=warn_of_an_argument,
        help="Bearer token: rather set SECRETS_TOKEN (others see arguments in `ps`).",
    ),
]
client_options = [
    *server_options,
    click.option("--scope", default="global", show_default=True, help="global or TYPE:ID"),
    click.option("--env", "environment", help="Environment (e.g. production)."),
]
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=LONG_TIMEOUT,
    show_default="600",
    metavar="SECONDS",
    envvar=TIMEOUT_ENV,
    help=f"Seconds to wait for the server's answer ({TIMEOUT_ENV}).",
)
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


def with_client(command: Any) -> Any:
    """`--addr` and `--token`; the command receives `client: Client`."""

    @functools.wraps(command)
    def connected(*args: Any, addr: str | None, token: str | None, **kwargs: Any) -> Any:
        return command(*args, client=Client(addr, token), **kwargs)

    return with_options(server_options)(connected)
