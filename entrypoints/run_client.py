"""`secretctl run`: a command with a context's secrets as its environment variables, each typed
secret as the variables its type documents; restarted when they change (`--watch`), or given
them in a file (`--mount`).

`--watch` follows the server's change stream (`GET /api/v1/events/stream`, Server-Sent Events,
resumed with `Last-Event-ID`) and looks at the secrets again only when an event names one of
the run's secrets (or a name it selects that a new secret could take); while the stream is
unavailable it polls the resolution every `--watch-interval` seconds, and says so on stderr.

The server maps secrets to variables (`GET /api/v1/resolve?variables=true`), so every client
names them alike. No value is ever put on a command line, in a message or in a log line: the
notes on standard error name secrets and variables only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from entrypoints.client import Client, context_options, with_options
from entrypoints.commands.exits import CommandError, ExitCode
from entrypoints.run_environment import Query, note, resolve_environment
from entrypoints.run_watch import ChangeFeed, Watcher
from plugins.format_dotenv import Style, line_of, usual_quote

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MOUNT_PATH_VARIABLE = "SECRETCTL_MOUNT_PATH"


def dotenv_text(variables: dict[str, str], skip: bool) -> str:
    """The variables as a `.env` file that sh sources and python-dotenv reads alike (the
    dotenv exporter's quoting); a value no quoting holds blocks, or is skipped with a note."""
    lines, left_out = [], []
    for name in sorted(variables):
        quote = usual_quote(variables[name])
        if quote is None:
            left_out.append(name)
        else:
            lines.append(line_of(name, variables[name], Style(quote)))
    if left_out and not skip:
        raise CommandError(
            f"not run: no .env quoting holds {', '.join(left_out)} (' together with $ or a "
            "backtick); --skip-unavailable leaves them out of the file"
        )
    for name in left_out:
        note(f"left {name} out of the file: no .env quoting holds its value")
    return "".join(lines)


class Mount:
    """The file `--mount` writes: created exclusively with mode 0600, replaced whole when the
    secrets change, removed when `run` ends."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()
        self.created = False

    def write(self, text: str) -> None:
        if not self.created:
            try:
                descriptor = os.open(
                    self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
                )
            except FileExistsError:
                raise CommandError(
                    f"{self.path} exists: --mount makes a new file", ExitCode.CONFLICT
                ) from None
            except OSError as error:
                raise CommandError(f"cannot create {self.path}: {error.strerror}") from None
            self.created = True
            self._fill(descriptor, text)
            return
        descriptor, staged = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            self._fill(descriptor, text)
            os.replace(staged, self.path)
        finally:
            Path(staged).unlink(missing_ok=True)

    @staticmethod
    def _fill(descriptor: int, text: str) -> None:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)

    def remove(self) -> None:
        if self.created:
            self.path.unlink(missing_ok=True)


def child_environment(
    variables: dict[str, str], inherit: bool, mount: Mount | None
) -> dict[str, str]:
    """What the child starts with: the variables, or with `--mount` only the file's path."""
    base = dict(os.environ) if inherit else {}
    if mount is not None:
        return base | {MOUNT_PATH_VARIABLE: str(mount.path)}
    return base | variables


class Supervisor:
    """The child process: started, restarted, sent the signals `run` receives (SIGINT, SIGTERM,
    SIGHUP); `run` exits with its code (128 + N when signal N ended it)."""

    def __init__(self, command: tuple[str, ...], grace: float) -> None:
        self.command = command
        self.grace = grace
        self.child: subprocess.Popen[bytes] | None = None
        self.signalled: int | None = None

    @contextmanager
    def forwarding(self) -> Iterator[None]:
        previous = {signum: signal.signal(signum, self._forward) for signum in FORWARDED_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.signalled = signum
        if self.child is not None:
            self.child.send_signal(signum)  # unless it has ended

    def start(self, environment: dict[str, str]) -> None:
        try:
            self.child = subprocess.Popen(self.command, env=environment)  # noqa: S603
        except OSError as error:
            raise CommandError(f"cannot run {self.command[0]}: {error.strerror}") from None
        if self.signalled is not None:  # it came while the child was being started
            self.child.send_signal(self.signalled)

    def wait(self, timeout: float | None) -> int | None:
        """The child's exit status once it ended, else None after `timeout` seconds."""
        assert self.child is not None
        try:
            code = self.child.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return 128 - code if code < 0 else code

    def stop(self) -> int:
        """SIGTERM, SIGKILL after the grace period; the exit status."""
        assert self.child is not None
        self.child.terminate()
        code = self.wait(self.grace)
        if code is None:
            self.child.kill()
            code = self.wait(None)
        assert code is not None
        return code


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--only",
    multiple=True,
    metavar="NAME[,NAME…]",
    help="Only these secrets (repeat, or separate with commas); one that resolves to nothing "
    "blocks like an unavailable one.",
)
@click.option("--prefix", help="Only secrets whose name starts with this.")
@click.option(
    "--skip-unavailable",
    is_flag=True,
    help="Run without the secrets that have no usable value (expired, not yet valid, disabled, "
    "not readable, binary) and the variables two secrets contest, naming them on stderr. "
    "Without it they stop the run (exit 1) before COMMAND starts.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Restart COMMAND when one of its secrets changes: follows the server's change "
    "stream, and polls while it is unavailable.",
)
@click.option(
    "--watch-interval",
    type=click.FloatRange(min=1.0),
    default=10.0,
    show_default=True,
    help="Seconds between two polls of --watch (without the change stream, or when a change "
    "could not be taken and is tried again).",
)
@click.option(
    "--poll", is_flag=True, help="With --watch: poll every --watch-interval, not the stream."
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0.0),
    default=10.0,
    show_default=True,
    help="Seconds COMMAND has to stop after SIGTERM (a --watch restart) before SIGKILL.",
)
@click.option(
    "--mount",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Write the variables to this new file (.env form, mode 0600) instead of the "
    f"environment; COMMAND finds its path in {MOUNT_PATH_VARIABLE}. Removed when run ends.",
)
@click.option("--no-inherit-env", is_flag=True, help="Start from an empty environment.")
@with_options(context_options)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    only: tuple[str, ...],
    prefix: str | None,
    skip_unavailable: bool,
    watch: bool,
    watch_interval: float,
    poll: bool,
    grace: float,
    mount: Path | None,
    no_inherit_env: bool,
    addr: str | None,
    token: str | None,
    project: str | None,
    team: str | None,
    organization: str | None,
    environment: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with the context's secrets as environment variables. The most specific
    secret wins each name; a typed secret sets the variables its type documents
    (aws_credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY…), and a variable two secrets
    set goes to the more specific one (the other is named on stderr). Exits with COMMAND's
    code; SIGINT, SIGTERM and SIGHUP are passed on to it.

    \b
      secretctl run --project p-42 --env production -- python app.py
      secretctl run --project p-42 --only AWS,DB_URL -- ./deploy.sh
      secretctl run --project p-42 --prefix STRIPE_ --skip-unavailable -- node server.js
      secretctl run --project p-42 --watch --watch-interval 30 -- ./worker
      secretctl run --project p-42 --mount app.env -- ./app --env-file app.env
    """
    context = {"project": project, "team": team, "organization": organization}
    context["environment"] = environment
    query = Query(
        context={key: value for key, value in context.items() if value},
        names=tuple(name for given in only for name in given.split(",") if name),
        prefix=prefix,
    )
    client = Client(addr, token)
    watcher = None
    if watch:
        feed = ChangeFeed(Client(addr, token), query, watch_interval) if not poll else None
        watcher = Watcher(client, query, skip_unavailable, watch_interval, feed)
    if watcher is not None:
        variables = watcher.start()
    else:
        variables = resolve_environment(client, query, skip_unavailable)
    if watcher is None and mount is None:
        exec_command(command, child_environment(variables, not no_inherit_env, None))
    run = Run(Supervisor(command, grace), watcher, skip_unavailable)
    run.mount = Mount(mount) if mount is not None else None
    run.inherit = not no_inherit_env
    with run.supervisor.forwarding():
        try:
            code = run.until_done(variables)
        finally:
            if run.mount is not None:
                run.mount.remove()
    sys.exit(code)


def exec_command(command: tuple[str, ...], environment: dict[str, str]) -> NoReturn:
    """Become COMMAND: its signals and exit code are its own."""
    try:
        os.execvpe(command[0], list(command), environment)  # noqa: S606
    except OSError as error:
        raise CommandError(f"cannot run {command[0]}: {error.strerror}") from None


@dataclass
class Run:
    """A supervised run (`--watch` or `--mount`): the child, what watches its secrets, and
    the file it reads them from."""

    supervisor: Supervisor
    watcher: Watcher | None
    skip: bool
    mount: Mount | None = None
    inherit: bool = True

    def until_done(self, variables: dict[str, str]) -> int:
        """Run the child until it ends, restarted with new variables when the watcher sees
        them; its exit status."""
        if self.mount is not None:
            self.mount.write(dotenv_text(variables, self.skip))
        if self.supervisor.signalled is not None:  # before anything started
            return 128 + self.supervisor.signalled
        self.supervisor.start(child_environment(variables, self.inherit, self.mount))
        while True:
            code = self.supervisor.wait(self.watcher.pause if self.watcher is not None else None)
            if code is not None:
                return code
            assert self.watcher is not None
            if not self.watcher.due():
                continue
            changed = self.watcher.changed_environment(variables)
            if changed is None or self.supervisor.signalled is not None:
                continue
            try:
                text = dotenv_text(changed, self.skip) if self.mount is not None else ""
            except click.ClickException as error:
                note(f"{error.message}; the command keeps running")
                continue
            note("secrets changed: restarting the command")
            code = self.supervisor.stop()
            if self.supervisor.signalled is not None:  # asked to stop meanwhile: no new start
                return code
            variables = changed
            if self.mount is not None:
                self.mount.write(text)
            self.supervisor.start(child_environment(variables, self.inherit, self.mount))
