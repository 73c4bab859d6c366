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

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click
import requests

from entrypoints.client import Client, api_error, context_options, with_options
from entrypoints.commands.exits import CommandError, ExitCode
from plugins.format_dotenv import Style, line_of, usual_quote

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MOUNT_PATH_VARIABLE = "SECRETCTL_MOUNT_PATH"
POLL_TIMEOUT_SECONDS = 10.0
STREAM_READ_SECONDS = 45.0  # the server sends a keepalive every 15 s: a silent stream is lost
SHORT_STREAM_SECONDS = 5.0  # a stream that ends sooner makes the next reconnection wait longer
STREAM_PAUSE_SECONDS = 0.25  # how often a run following the stream looks at what it flagged
# Events that change neither a secret's winner nor its version: no need to look.
IGNORED_EVENTS = frozenset({"secret.expiring", "secret.rotation_failed"})


def note(text: str) -> None:
    click.echo(f"secretctl run: {text}", err=True)


@dataclass(frozen=True)
class Query:
    """What `run` asks the server for: a context and the names selected in it."""

    context: dict[str, str]
    names: tuple[str, ...] = ()
    prefix: str | None = None

    def params(self, *, variables: bool) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.context)
        if self.names:
            params["name"] = list(self.names)
        if self.prefix:
            params["prefix"] = self.prefix
        if variables:
            params["variables"] = "true"
        return params


@dataclass
class Environment:
    """The variables of a resolution, and what keeps some out: `blocking` stops a strict run,
    `notes` are said on standard error. Names only, never a value."""

    variables: dict[str, str] = field(default_factory=dict)
    blocking: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def refuse(self, problem: str, skip: bool) -> None:
        if skip:
            self.notes.append(f"skipped {problem}")
        else:
            self.blocking.append(problem)


def environment_from(items: list[dict[str, Any]], query: Query, skip: bool) -> Environment:
    """The variables the answer's entries set. An entry without a value (expired, not yet
    valid, disabled, forbidden), a value that makes no variable (binary), a variable two as
    specific secrets set, and a name of `--only` that resolves to nothing: blocking, or
    skipped with a note. A variable a more specific secret takes is a note."""
    environment = Environment()
    for missing in sorted(set(query.names) - {item["name"] for item in items}):
        outside = not missing.startswith(query.prefix or "")
        environment.refuse(f"{missing} ({'not under --prefix' if outside else 'not found'})", skip)
    contested: dict[str, set[str]] = {}
    for item in items:
        problem = item["value_error"] or item["variables_error"]
        if problem:
            environment.refuse(f"{item['name']} ({problem})", skip)
            continue
        environment.variables.update(item["variables"])
        for unset in item["unset_variables"]:
            if unset["reason"] == "shadowed":
                environment.notes.append(
                    f"{unset['name']} of {item['name']} is not set: "
                    f"{', '.join(unset['by'])} (more specific) sets it"
                )
            else:
                contested.setdefault(unset["name"], set()).update([item["name"], *unset["by"]])
    for variable, names in sorted(contested.items()):
        environment.refuse(
            f"{variable} (two secrets become the environment variable {variable}: "
            f"{', '.join(sorted(names))}; neither is more specific)",
            skip,
        )
    return environment


def resolve_environment(client: Client, query: Query, skip: bool) -> dict[str, str]:
    """The variables to run with; `CommandError` naming what blocks a strict run."""
    answer = client.json("GET", "/resolve", params=query.params(variables=True))
    environment = environment_from(answer["items"], query, skip)
    for text in environment.notes:
        note(text)
    if environment.blocking:
        raise CommandError(
            "not run: no variables for "
            + "; ".join(environment.blocking)
            + " (--skip-unavailable runs without them, --only NAME selects secrets)"
        )
    return environment.variables


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


class ChangeFeed:
    """The server's change stream, followed in a thread of its own: `touched` is set when an
    event may change the run's secrets (its secret's name is one the run resolved, or one it
    selects that a new secret could take), and the watcher then looks. Reconnects after the
    last event seen (`Last-Event-ID`), looking once more after a reconnection in case the
    server no longer kept what came in between. `following` is false while the stream cannot
    be had (the watcher polls meanwhile); each change of that is said once on stderr. Events
    carry names, never a value."""

    def __init__(self, client: Client, query: Query, interval: float) -> None:
        self.client = client
        self.query = query
        self.interval = interval
        self.names: frozenset[str] = frozenset()  # the names the run resolved, kept current
        self.cursor = "now"
        self.touched = threading.Event()
        self.following = False
        self.lost: str | None = None  # why the stream is unavailable, once said
        self.retry = 2.0  # seconds before reconnecting to a stream that ended (its `retry:`)

    def open(self) -> None:
        """Follows the stream from its head (asked before the secrets are read, so that no
        change in between is missed); a server without one (404) is polled for good."""
        response = self.client.call(
            "GET", "/events", params={"after": "now", "wait": 0}, timeout=POLL_TIMEOUT_SECONDS
        )
        if response.status_code == 404:
            self._unavailable("the server has none", for_good=True)
            return
        if response.status_code >= 400:
            self._unavailable(f"HTTP {response.status_code}")
        else:
            self.cursor = str(response.json()["next"])
            self.following = True
        threading.Thread(target=self._follow, name="secretctl-watch", daemon=True).start()

    def _unavailable(self, reason: str, *, for_good: bool = False) -> None:
        self.following = False
        if self.lost is None:
            until = "" if for_good else " until it is back"
            note(
                f"the change stream is unavailable ({reason}): watching by polling every "
                f"{self.interval:g} s{until}"
            )
        self.lost = reason

    def _follow(self) -> None:
        delay = 1.0
        while True:
            headers = {"Accept": "text/event-stream"}
            if self.cursor != "now":
                headers["Last-Event-ID"] = self.cursor
            opened = time.monotonic()
            try:
                with self.client.session.get(
                    f"{self.client.addr}/api/v1/events/stream",
                    headers=headers,
                    stream=True,
                    timeout=(POLL_TIMEOUT_SECONDS, STREAM_READ_SECONDS),
                ) as response:
                    if response.status_code >= 400:
                        if response.status_code == 400:  # a cursor it refuses: from the head
                            self.cursor = "now"
                        self._unavailable(f"HTTP {response.status_code}")
                    else:
                        self._connected()
                        self._read(response)
                        # The server ended it (a restart, its stream's end): reconnect after
                        # the delay it asks for, backing off when streams end at once.
                        if time.monotonic() - opened > SHORT_STREAM_SECONDS:
                            delay = 1.0
                            time.sleep(self.retry)
                        else:
                            time.sleep(max(self.retry, delay))
                            delay = min(delay * 2, 30.0)
                        continue
            except requests.RequestException:
                self._unavailable("no answer")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _connected(self) -> None:
        if self.lost is not None:
            note("following the change stream again")
            self.lost = None
            self.touched.set()  # what came while it was lost may be gone from the stream
        self.following = True

    def _read(self, response: requests.Response) -> None:
        data: list[str] = []
        # chunk_size None: each piece as it arrives, not once 512 bytes have come
        for raw in response.iter_lines(chunk_size=None):  # type: ignore[call-overload]
            line = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            if not line:
                if data and self.touches(event_of(data)):
                    self.touched.set()
                data = []
            elif not line.startswith(":"):
                key, _, text = line.partition(":")
                text = text.removeprefix(" ")
                if key == "data":
                    data.append(text)
                elif key == "id":
                    self.cursor = text
                elif key == "retry" and text.isdigit():
                    self.retry = int(text) / 1000

    def touches(self, event: dict[str, Any]) -> bool:
        """Whether an event may change what the run resolves: it names a secret the run
        resolved, or one it selects (`--only`, `--prefix`, its environment) that could be new."""
        if event.get("type") in IGNORED_EVENTS:
            return False
        secret = event.get("secret") or {}
        name = secret.get("name")
        if name is None or name in self.names:  # a purged secret's event names nothing
            return True
        if self.query.names:
            return name in self.query.names
        if not name.startswith(self.query.prefix or ""):
            return False
        environment = secret.get("environment")
        return environment is None or environment == self.query.context.get("environment")


def event_of(data: list[str]) -> dict[str, Any]:
    """An event's JSON; one that cannot be read names nothing (the run looks, to be safe)."""
    try:
        event = json.loads("\n".join(data))
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


Versions = tuple[tuple[str, str, int], ...]  # each selected name's winner and its version


class Watcher:
    """Notices a change of the child's secrets without reading values at every look: it looks
    when the change stream says a change touched them (or every interval without the stream),
    asking for the resolution without values, with the ETag of the last answer (304 while
    nothing changed), and reads the values again only when a selected secret's winner or
    version changed. What it has seen moves on only once the values are read, so a look that
    fails (said once) is tried again every interval, stream or not."""

    def __init__(
        self,
        client: Client,
        query: Query,
        skip: bool,
        interval: float,
        feed: ChangeFeed | None = None,
    ) -> None:
        self.client = client
        self.query = query
        self.skip = skip
        self.interval = interval
        self.feed = feed
        self.etag: str | None = None
        self.versions: Versions | None = None
        self.failing = False
        self.looked = time.monotonic()

    def start(self) -> dict[str, str]:
        """The variables to start with (the stream's head first, then the versions: a change
        in between is seen next)."""
        if self.feed is not None:
            self.feed.open()
        etag, versions = self.latest()
        variables = resolve_environment(self.client, self.query, self.skip)
        self.etag = etag
        self.seen(versions)
        return variables

    def seen(self, versions: Versions | None) -> None:
        self.versions = versions
        if self.feed is not None and versions is not None:
            self.feed.names = frozenset(name for name, _, _ in versions)

    @property
    def pause(self) -> float:
        """How long the run waits for its command before asking whether to look: briefly
        with a stream (even one lost for now: it says when it is back), else an interval."""
        return STREAM_PAUSE_SECONDS if self.feed is not None else self.interval

    def due(self) -> bool:
        """Whether to look at the secrets now: an event touched them (following the stream),
        or an interval passed (polling, or a look that failed and is tried again)."""
        if self.feed is not None and self.feed.touched.is_set():
            self.feed.touched.clear()
            return True
        following = self.feed is not None and self.feed.following
        if following and not self.failing:
            return False
        return time.monotonic() - self.looked >= self.interval - STREAM_PAUSE_SECONDS

    def latest(self) -> tuple[str | None, Versions | None]:
        """The answer's ETag, and the versions when they differ from those seen (else None)."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = self.client.call(
            "GET",
            "/resolve",
            params=self.query.params(variables=False),
            headers=headers,
            timeout=POLL_TIMEOUT_SECONDS,
        )
        if response.status_code == 304:
            return self.etag, None
        if response.status_code >= 400:
            raise api_error(response)
        items = response.json()["items"]
        versions = tuple((item["name"], item["id"], item["version"]) for item in items)
        return response.headers.get("ETag"), None if versions == self.versions else versions

    def changed_environment(self, current: dict[str, str]) -> dict[str, str] | None:
        """New variables when the secrets changed, else None (a failing poll too)."""
        self.looked = time.monotonic()
        try:
            etag, versions = self.latest()
            variables = None
            if versions is not None:
                variables = resolve_environment(self.client, self.query, self.skip)
                self.seen(versions)
            self.etag = etag
        except (click.ClickException, requests.RequestException) as error:
            if not self.failing:
                reason = error.message if isinstance(error, click.ClickException) else "no answer"
                note(f"watching stalled ({reason}); the command keeps running")
            self.failing = True
            return None
        if self.failing:
            note("watching again")
            self.failing = False
        return variables if variables is not None and variables != current else None


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
