"""`secretctl run --watch`: noticing that a run's secrets changed. It follows the server's
change stream (`GET /api/v1/events/stream`, Server-Sent Events, resumed with `Last-Event-ID`) and
looks at the secrets again only when an event names one of the run's secrets (or a name it
selects that a new secret could take); while the stream is unavailable it polls the resolution
every `--watch-interval` seconds, and says so on stderr. Events carry names, never a value.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import click
import requests

from entrypoints.client import Client, api_error
from entrypoints.run_environment import Query, note, resolve_environment

POLL_TIMEOUT_SECONDS = 10.0
STREAM_READ_SECONDS = 45.0  # the server sends a keepalive every 15 s: a silent stream is lost
SHORT_STREAM_SECONDS = 5.0  # a stream that ends sooner makes the next reconnection wait longer
STREAM_PAUSE_SECONDS = 0.25  # how often a run following the stream looks at what it flagged
# Events that change neither a secret's winner nor its version: no need to look.
IGNORED_EVENTS = frozenset({"secret.expiring", "secret.rotation_failed"})


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
