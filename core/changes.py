"""The change stream: the change events a caller may see, pushed as they commit.

Every change event (`core.events.ChangeFeed`) is also written, in the transaction of its change,
to a durable log whose cursor is a monotonic integer (`ports.changes.ChangeSource`), kept at
least 24 hours. Each process runs ONE poller thread (`ChangeHub`) that reads new events from the
database every `poll_seconds` and wakes every connected subscriber of that process; events made
by any process or worker reach every stream. A subscriber behind the hub's in-memory window
catches up from the database. Each event is shown to a caller only if the caller may list that
secret, decided at delivery with the caller's bindings of that moment (`visible`). An event
never carries a value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.access import allowed, caller_bindings
from core.domain.access import ROLE_ACTIONS, Action, Target
from core.domain.changes import ChangeRecord
from core.domain.errors import InvalidInput, NotFound
from core.domain.values import Principal, ScopeRef
from ports.changes import ChangeSource
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

KEEP_HOURS = 24  # the least the log keeps; the worker prunes what is older
BATCH = 500  # events read from the database at a time
WINDOW = 2000  # events the hub keeps in memory for subscribers that are slightly behind
GAP_WAIT_SECONDS = 5.0  # how long a hole in the cursors may be a transaction still committing
IDLE_SECONDS = 10.0  # no subscriber for this long: the hub stops polling until the next one


@dataclass(frozen=True)
class StreamFilter:
    """What a subscriber asked for: a scope and its subtree (by path), and/or one secret."""

    scope_path: str | None = None
    secret_id: UUID | None = None

    def matches(self, record: ChangeRecord) -> bool:
        if self.secret_id is not None and record.secret_id != self.secret_id:
            return False
        if self.scope_path is not None:
            return record.scope_path is not None and record.scope_path.startswith(self.scope_path)
        return True


def parse_cursor(text: str | None, head: int) -> int:
    """A cursor from `after`/`Last-Event-ID`: a non-negative integer, or `now` (the head)."""
    if text is None or text == "" or text == "now":
        return head
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(
            "after is a non-negative integer event id or 'now'", details={"field": "after"}
        )
    return int(text)


def visible(
    actor: Principal,
    records: Sequence[ChangeRecord],
    uow: UnitOfWork,
    now: datetime,
) -> list[ChangeRecord]:
    """The records about secrets `actor` may list, with the caller's bindings read now."""
    if not records:
        return []
    bindings = caller_bindings(uow, actor, now)
    shown = []
    for record in records:
        if record.scope is None or record.scope_path is None:
            continue  # where it lived is unknown: nobody can be shown to be allowed
        target = Target(
            record.scope, record.scope_path, secret_id=record.secret_id, name=record.name
        )
        if allowed(actor, Action.LIST, target, bindings, now):
            shown.append(record)
    return shown


class ChangeHub:
    """One per process: one thread polls the log and wakes every subscriber of the process.

    Cursors are given out by the database as rows are inserted, so a transaction that commits
    late can leave a hole below rows already visible; the hub does not move past a hole until
    it has lasted `gap_wait` seconds (a rolled-back transaction leaves a hole for good).
    """

    def __init__(
        self,
        source: ChangeSource,
        poll_seconds: float = 0.5,
        window: int = WINDOW,
        gap_wait: float = GAP_WAIT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        idle_after: float = IDLE_SECONDS,
    ) -> None:
        self._source = source
        self._poll = poll_seconds
        self._window: deque[ChangeRecord] = deque(maxlen=window)
        self._gap_wait = gap_wait
        self._monotonic = monotonic
        self._condition = threading.Condition()
        self._polling = threading.Lock()  # one poll at a time: the poller's or a caller's
        self._cursor: int | None = None  # every event up to here is settled and seen
        self._gap_since: float | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._idle_after = idle_after
        self._waiting = 0  # subscribers inside `wait_after`
        self._active_at = monotonic()
        self.polls = 0  # for tests and stats

    @property
    def cursor(self) -> int:
        """Every event up to here has been seen by the hub (the head, as it can tell)."""
        self._start()
        with self._polling, self._condition:
            self._active_at = self._monotonic()
            if self._cursor is None:  # idle until now: start again at the head
                self._cursor = self._source.head()
            return self._cursor

    def _start(self) -> None:
        with self._condition:
            if self._thread is not None:
                return
            self._cursor = self._source.head()
            self._thread = threading.Thread(target=self._run, name="change-hub", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            if self._idle():
                continue
            try:
                self.poll_once()
            except Exception as error:  # the database may be down: try again next time
                log.warning("change stream: polling failed: %s", type(error).__name__)

    def _idle(self) -> bool:
        """With no subscriber for `idle_after` seconds the hub stops polling and forgets its
        place (and window): a process without streams sends the database nothing."""
        with self._polling, self._condition:
            quiet = self._monotonic() - self._active_at > self._idle_after
            if self._waiting or not quiet:
                return False
            self._cursor = None
            self._window.clear()
            self._gap_since = None
            return True

    def poll_once(self) -> int:
        """Read what was committed since the last poll; how many events it settled."""
        with self._polling:
            return self._poll_once()

    def _poll_once(self) -> int:
        with self._condition:
            cursor = self._cursor if self._cursor is not None else self._source.head()
        records = self._source.after(cursor, BATCH)
        self.polls += 1
        settled: list[ChangeRecord] = []
        for record in records:
            if record.id != cursor + 1:
                now = self._monotonic()
                if self._gap_since is None:
                    self._gap_since = now
                if now - self._gap_since < self._gap_wait:
                    break  # a transaction may still be committing below this one
            self._gap_since = None
            settled.append(record)
            cursor = record.id
        with self._condition:
            self._window.extend(settled)
            self._cursor = cursor
            if settled:
                self._condition.notify_all()
        return len(settled)

    def wait_after(
        self, position: int, timeout: float, fresh: bool = False
    ) -> tuple[list[ChangeRecord], int]:
        """Events after `position` (up to the hub's cursor), waiting up to `timeout` seconds for
        the first; and the position to ask from next time. `fresh`: poll now rather than wait
        for the poller, if the hub has nothing after `position` (a long poll's first look)."""
        if fresh and position >= self.cursor:
            self.poll_once()
        self.cursor  # noqa: B018 - started, and not idle
        with self._condition:
            self._waiting += 1
        try:
            return self._wait_after(position, timeout)
        finally:
            with self._condition:
                self._waiting -= 1
                self._active_at = self._monotonic()

    def _wait_after(self, position: int, timeout: float) -> tuple[list[ChangeRecord], int]:
        deadline = self._monotonic() + timeout
        while True:
            with self._condition:
                assert self._cursor is not None
                head = self._cursor
                oldest = self._window[0].id if self._window else head + 1
                if position < head and position + 1 >= oldest:
                    records = [record for record in self._window if record.id > position]
                    return records[:BATCH], records[:BATCH][-1].id
            if position < head:  # behind the window: catch up from the database
                records = self._source.after(position, BATCH, upto=head)
                return records, records[-1].id if records else head
            remaining = deadline - self._monotonic()
            if remaining <= 0 or self._stop.is_set():
                return [], position
            with self._condition:
                if self._cursor == head:
                    self._condition.wait(remaining)


class ChangeStream:
    """One caller's view of the change stream: authorized batches, after a cursor."""

    def __init__(
        self,
        hub: ChangeHub,
        uow_factory: Callable[..., UnitOfWork],
        clock: Clock,
    ) -> None:
        self._hub = hub
        self._uow_factory = uow_factory
        self._clock = clock

    def start(self, actor: Principal, after: str | None) -> int:
        """The position a subscriber starts from (`after`: a cursor or `now`)."""
        return parse_cursor(after, self._hub.cursor)

    def filter_for(
        self, actor: Principal, scope: ScopeRef | None, secret_id: UUID | None
    ) -> StreamFilter:
        """The filter of a subscription; a scope the caller cannot see is `NotFound`."""
        if scope is None:
            return StreamFilter(secret_id=secret_id)
        with self._uow_factory(read_only=True) as uow:
            found = uow.scopes.get(scope)
            now = self._clock.now()
            if found is None or not (
                allowed(
                    actor,
                    Action.LIST,
                    Target(found.ref, found.path),
                    caller_bindings(uow, actor, now),
                    now,
                )
                or _lists_below(uow, actor, found.path, now)
            ):
                raise NotFound(f"no scope {scope}")
        return StreamFilter(scope_path=found.path, secret_id=secret_id)

    def next_batch(
        self,
        actor: Principal,
        position: int,
        wanted: StreamFilter,
        timeout: float,
        fresh: bool = False,
    ) -> tuple[list[ChangeRecord], int]:
        """The events after `position` the caller may see now, waiting up to `timeout` seconds
        for any event; and the next position (moved on past events the caller may not see).
        `fresh`: see `ChangeHub.wait_after` (for long polls, not for streams)."""
        deadline = time.monotonic() + timeout
        while True:
            records, position = self._hub.wait_after(
                position, max(0.0, deadline - time.monotonic()), fresh
            )
            fresh = False
            matching = [record for record in records if wanted.matches(record)]
            if matching:
                with self._uow_factory(read_only=True) as uow:
                    shown = visible(actor, matching, uow, self._clock.now())
                if shown:
                    return shown, position
            if time.monotonic() >= deadline:
                return [], position


def _lists_below(uow: UnitOfWork, actor: Principal, path: str, now: datetime) -> bool:
    """Whether the caller holds a list binding somewhere in the subtree at `path`."""
    return any(
        binding.scope_path.startswith(path) and Action.LIST in ROLE_ACTIONS[binding.role]
        for binding in caller_bindings(uow, actor, now)
    )
