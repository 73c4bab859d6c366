"""The audit trail: who did what to which secret, when, from where, and how it went.

Every use case records one event per attempt, successful or not. Events form a hash chain:
each holds the hash of its predecessor and of its own canonical content, so an edited, deleted
or reordered row breaks the chain at that point; signed checkpoints (HMAC with a key the
database does not hold) make a rewrite of the whole chain detectable too. No event ever holds a
secret value: where correlating two writes helps, the version's keyed checksum stands in.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from core.domain.audit import (
    AppendedBatch,
    AuditAction,
    AuditEvent,
    BrokenLink,
    ChainLink,
    ChainSegment,
    Checkpoint,
    RequestInfo,
    with_fields,
)
from core.domain.audit_bounds import (
    TEXT_LIMITS,
    bounded_text,
)
from core.domain.errors import (
    AuditEventRefused,
    AuditUnavailable,
    Forbidden,
    NotFound,
    ServiceError,
)
from core.domain.values import Principal
from ports.audit import AuditSink
from ports.persistence import ChainAppender, UnitOfWork
from ports.security import Clock

log = logging.getLogger(__name__)

GENESIS = "0" * 64
OUTCOMES = ("success", "denied", "not_found", "error")


_TEXT_LIMITS = tuple(TEXT_LIMITS.items())


REQUIRED_TEXTS = ("actor", "actor_type", "action", "resource", "outcome")
PLACEHOLDER_NOTE = {"placeholder": "the store refused this event: its texts are kept in ASCII"}


def placeholder_of(event: AuditEvent) -> AuditEvent:
    """The last resort for an event that its store refused even alone (a database whose
    encoding cannot hold a character, say): its texts in ASCII, the rest escaped, no version,
    and for details only a note saying so. The attempt stays on record with what can be kept."""
    changes: dict[str, Any] = {"version": None, "details": dict(PLACEHOLDER_NOTE)}
    for name, limit in _TEXT_LIMITS:
        value = event.__dict__[name]
        if value is None:
            changes[name] = "unknown" if name in REQUIRED_TEXTS else None
        else:
            text = bounded_text(value, limit)
            changes[name] = bounded_text(text.encode("ascii", "backslashreplace").decode(), limit)
    if changes["outcome"] not in OUTCOMES:
        changes["outcome"] = "error"
    return with_fields(event, **changes)


# The canonical JSON of the hashed document: what `json.dumps(..., sort_keys=True,
# separators=(",", ":"), ensure_ascii=True)` writes, with the encoder built once.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_quote = json.encoder.encode_basestring_ascii  # how that encoder writes a str (C)


def event_hash(seq: int, prev_hash: str, event: AuditEvent) -> str:
    return chain_hash(seq, prev_hash, canonical_content(event))


def canonical_content(event: AuditEvent) -> str:
    """The canonical JSON of `event.content()`: what its hash covers (ASCII only).

    Written field by field in sorted key order, each text by the json module's own C quoting
    function, about twice as fast as encoding the content dict (a resolution writes 41 events);
    a field of any other type than the declared ones goes the general way. Tests compare both.
    """
    fields = event.__dict__
    details = fields["details"]
    try:
        return _write_canonical(
            fields,
            _quote(fields["time"].isoformat()),
            _canonical(dict(details)) if details else "{}",
        )
    except _Unusual:
        return _canonical(event.content())


def canonical_fields(content: dict[str, Any]) -> str:
    """The canonical JSON of a content dict as `AuditEvent.content()` gives it (the time as
    ISO 8601 text, the details a dict), written as `canonical_content` writes an event's."""
    details = content["details"]
    try:
        return _write_canonical(
            content, _text(content["time"]), _canonical(details) if details else "{}"
        )
    except _Unusual:
        return _canonical(content)


def _write_canonical(fields: Mapping[str, Any], time: str, details: str) -> str:
    """`fields` in canonical JSON, with the time and the details already written."""
    return (
        '{"action":'
        + _text(fields["action"])
        + ',"actor":'
        + _text(fields["actor"])
        + ',"actor_type":'
        + _text(fields["actor_type"])
        + ',"details":'
        + details
        + ',"outcome":'
        + _text(fields["outcome"])
        + ',"reason":'
        + _text(fields["reason"])
        + ',"request_id":'
        + _text(fields["request_id"])
        + ',"resource":'
        + _text(fields["resource"])
        + ',"scope":'
        + _text(fields["scope"])
        + ',"scope_path":'
        + _text(fields["scope_path"])
        + ',"source_ip":'
        + _text(fields["source_ip"])
        + ',"time":'
        + time
        + ',"user_agent":'
        + _text(fields["user_agent"])
        + ',"version":'
        + _integer(fields["version"])
        + "}"
    )


class _Unusual(Exception):
    """A field whose type the fast writer of `canonical_content` leaves to the encoder."""


def _text(value: object) -> str:
    if type(value) is str:
        return _quote(value)
    if value is None:
        return "null"
    raise _Unusual


def _integer(value: object) -> str:
    if type(value) is int:
        return str(value)
    if value is None:
        return "null"
    raise _Unusual


def chain_hash(seq: int, prev_hash: str, canonical: str) -> str:
    """SHA-256 (hex) of the canonical JSON of `{"seq": seq, "prev": prev_hash, "event":
    content}`, given the content's own canonical JSON: with sorted keys that document is
    `{"event":<content>,"prev":"<prev_hash>","seq":<seq>}`. A store that appends in one round
    trip (`ports.persistence.ChainAppender`) computes exactly this."""
    document = '{"event":' + canonical + ',"prev":"' + prev_hash + '","seq":' + str(seq) + "}"
    return hashlib.sha256(document.encode()).hexdigest()


def chain_segments(
    segment: ChainSegment, count: int, checkpoint_key: bytes
) -> list[ChainSegment] | None:
    """`segment` cut into at most `count` consecutive segments of about equal length, each but
    the first starting right after a signed checkpoint whose MAC holds (its hash is then the
    next segment's anchor, and the segment before it checks that its last event has that
    hash). None when it cannot be cut in two, or a checkpoint at a cut does not hold (a pass
    in order then names the problem)."""
    first, last = segment.first, segment.last
    size = -(-(last - first + 1) // max(count, 1))
    by_seq = {checkpoint.seq: checkpoint for checkpoint in segment.checkpoints}
    seqs = sorted(by_seq)
    firsts, anchors = [first], [segment.anchor]
    for number in range(1, count):
        found = bisect.bisect_right(seqs, first + number * size - 1) - 1
        if found < 0 or not firsts[-1] <= seqs[found] < last:
            continue
        checkpoint = by_seq[seqs[found]]
        if not hmac.compare_digest(
            checkpoint.mac, checkpoint_mac(checkpoint_key, checkpoint.seq, checkpoint.hash)
        ):
            return None
        firsts.append(checkpoint.seq + 1)
        anchors.append(checkpoint.hash)
    if len(firsts) < 2:
        return None
    lasts = [start - 1 for start in firsts[1:]] + [last]
    return [
        ChainSegment(
            start,
            end,
            anchor,
            tuple(c for c in segment.checkpoints if start <= c.seq <= end),
        )
        for start, end, anchor in zip(firsts, lasts, anchors, strict=True)
    ]


def link_of(event: AuditEvent) -> ChainLink:
    assert event.seq is not None and event.prev_hash is not None and event.hash is not None
    return ChainLink(event.seq, event.prev_hash, event.hash, canonical_content(event))


def chained(events: Iterable[AuditEvent], head_seq: int, head_hash: str) -> list[AuditEvent]:
    """Give events their places after the chain head (`head_seq` 0 and GENESIS when empty)."""
    linked = []
    for offset, event in enumerate(events, start=1):
        seq = head_seq + offset
        digest = event_hash(seq, head_hash, event)
        linked.append(with_fields(event, seq=seq, prev_hash=head_hash, hash=digest))
        head_hash = digest
    return linked


def derive_checkpoint_key(secret: bytes) -> bytes:
    """The checkpoint key, derived from a key kept outside the database (the key provider's)."""
    return hmac.new(secret, b"secret-management audit checkpoints", hashlib.sha256).digest()


def checkpoint_mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


def verify_chain(
    events: Iterable[AuditEvent],
    checkpoints: Iterable[Checkpoint],
    checkpoint_key: bytes,
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS,
    checkpoint_every: int | None = None,
) -> tuple[int, BrokenLink | None]:
    """Walk the events in order; return how many were checked and the first broken link.

    With `checkpoint_every`, each event at that cadence must have its signed checkpoint, so a
    chain rewritten without the key (its checkpoints dropped) does not pass either."""
    return verify_links(
        (link_of(event) for event in events),
        checkpoints,
        checkpoint_key,
        start_seq=start_seq,
        start_prev_hash=start_prev_hash,
        checkpoint_every=checkpoint_every,
    )


def verify_links(
    links: Iterable[ChainLink],
    checkpoints: Iterable[Checkpoint],
    checkpoint_key: bytes,
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS,
    checkpoint_every: int | None = None,
) -> tuple[int, BrokenLink | None]:
    """`verify_chain` on links as a repository streams them (`AuditRepository.chain_links`)."""
    with _without_cyclic_gc():
        return _verify_links(
            links, checkpoints, checkpoint_key, start_seq, start_prev_hash, checkpoint_every
        )


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """A long chain makes millions of short-lived, acyclic dicts and tuples: reference counting
    frees them all, and the cyclic collector's passes over them only cost time (about 40% of
    a verification), so it pauses while the chain is walked."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _verify_links(
    links: Iterable[ChainLink],
    checkpoints: Iterable[Checkpoint],
    checkpoint_key: bytes,
    start_seq: int,
    start_prev_hash: str,
    checkpoint_every: int | None,
) -> tuple[int, BrokenLink | None]:
    signed = {checkpoint.seq: checkpoint for checkpoint in checkpoints}
    expected_seq, prev_hash, checked = start_seq, start_prev_hash, 0
    for event in links:
        if event.seq != expected_seq:
            return checked, BrokenLink(expected_seq, f"event {expected_seq} is missing")
        if event.prev_hash != prev_hash:
            return checked, BrokenLink(expected_seq, "it does not follow its predecessor")
        if event.hash != chain_hash(expected_seq, prev_hash, event.canonical):
            return checked, BrokenLink(expected_seq, "its content was altered")
        checkpoint = signed.pop(expected_seq, None)
        if checkpoint is None and checkpoint_every and expected_seq % checkpoint_every == 0:
            return checked, BrokenLink(expected_seq, "its signed checkpoint is missing")
        if checkpoint is not None and not (
            checkpoint.hash == event.hash
            and hmac.compare_digest(
                checkpoint.mac, checkpoint_mac(checkpoint_key, checkpoint.seq, checkpoint.hash)
            )
        ):
            return checked, BrokenLink(expected_seq, "it does not match its signed checkpoint")
        prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    for checkpoint in sorted(signed.values(), key=lambda c: c.seq):
        if checkpoint.seq >= start_seq:  # signed, but past the last event: the tail was cut
            return checked, BrokenLink(checkpoint.seq, "a signed checkpoint has no event")
    return checked, None


def outcome_of(error: BaseException) -> str:
    if isinstance(error, Forbidden):
        return "denied"
    if isinstance(error, NotFound):
        return "not_found"
    return "error"


class AuditChain:
    """Appends events to the chain: under the chain's lock, hashed, and each event whose seq
    is a multiple of `checkpoint_every` signed in a checkpoint with an HMAC whose key the
    database does not hold (verification expects exactly those)."""

    def __init__(self, checkpoint_key: bytes, checkpoint_every: int = 1000) -> None:
        self._key = checkpoint_key
        self.every = checkpoint_every

    def append(
        self,
        uow: UnitOfWork,
        events: list[AuditEvent],
        *,
        requires_generation: int | None = None,
    ) -> list[AuditEvent]:
        """Lock the chain and append `events`, bounded (`AuditEvent.bounded`), in `uow`'s
        transaction. With `requires_generation`, raise `StaleRead` instead if the change
        generation moved on."""
        events = [event.bounded() for event in events]
        head_seq, head_hash = uow.audit.lock_head()
        if requires_generation is not None and uow.audit.generation() != requires_generation:
            raise StaleRead()
        return self.link(uow, events, head_seq, head_hash)

    def link(
        self, uow: UnitOfWork, events: list[AuditEvent], head_seq: int, head_hash: str
    ) -> list[AuditEvent]:
        """Append `events` (bounded already) after the head that `lock_head` returned in this
        transaction."""
        linked = chained(events, head_seq, head_hash)
        uow.audit.append(linked)  # the events, and the head moved to the last one
        for event in linked:  # set by chained(): seq and hash are there
            if event.seq is not None and event.hash is not None and event.seq % self.every == 0:
                uow.audit.add_checkpoint(self.checkpoint(event.seq, event.hash, event.time))
        return linked

    def checkpoint(self, seq: int, digest: str, at: datetime) -> Checkpoint:
        return Checkpoint(seq, digest, checkpoint_mac(self._key, seq, digest), at)

    def __repr__(self) -> str:
        return "AuditChain(<key redacted>)"


class StaleRead(Exception):
    """A read served from the cache met a change committed since: do it again from the store."""


class GroupCommit:
    """Appends the events of concurrent requests in one transaction: group commit.

    A caller hands over its events and waits until the transaction holding them has committed,
    so nothing is answered before its event is durable; the first caller to find no write in
    progress becomes the leader and writes every event queued so far (its own included), while
    the others queue up behind it for the next write. Each event is bounded before it is
    queued (`AuditEvent.bounded`). A write that the store refuses for an event's data is done
    again in halves, so that an event it cannot store fails no other caller (its own is then
    recorded as a placeholder); a store that cannot be written fails every caller in the write
    (a value read then fails closed). One instance per process: threads share it.
    """

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        chain: AuditChain,
        observer: Callable[[int], None] | None = None,
        appender: ChainAppender | None = None,
        on_written: Callable[[int, float], None] | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._chain = chain
        # Told each write's number of events and duration in seconds (the service's metrics).
        self._on_written = on_written
        self._observer = observer  # told the change generation seen under the chain's lock
        # A store's one-round-trip append (PostgreSQL): the chain's lock is then held inside
        # the database only, not across this process's network waits and thread switches.
        self._appender = appender
        self._condition = threading.Condition()
        self._queue: list[_Ticket] = []
        self._writing = False
        self.batches = 0  # transactions written, and the events in them: for tests and stats
        self.events = 0

    @property
    def queued(self) -> int:
        """Callers waiting for the next write: for tests and stats."""
        return len(self._queue)

    def record(
        self,
        events: list[AuditEvent],
        changes: ChangeListener | None = None,
        requires_generation: int | None = None,
    ) -> list[AuditEvent]:
        """The events as chained (seq, hashes), once committed. With `requires_generation`,
        `StaleRead` (and nothing recorded) if the change generation is another one by then."""
        ticket = _Ticket([event.bounded() for event in events], changes, requires_generation)
        # For the appender, the canonical contents, written by each caller rather than by the
        # batch's writer; none for events with changes to record in the same transaction.
        if self._appender is not None and not (changes is not None and changes.changes_in(events)):
            ticket.contents = [canonical_content(event) for event in ticket.events]
        with self._condition:
            self._queue.append(ticket)
            while self._writing and not ticket.done:
                self._condition.wait()
            if ticket.done:
                return ticket.outcome()
            batch, self._queue = self._queue, []
            self._writing = True
        started = time.perf_counter()
        try:
            self._write(batch)
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()
        if self._on_written is not None:
            written = sum(len(queued.events) for queued in batch)
            self._on_written(written, time.perf_counter() - started)
        return ticket.outcome()

    def _write(self, batch: list[_Ticket]) -> None:
        """Write the batch, settling each ticket in it. Refused for an event's data, the batch
        is written again in halves down to the ticket holding it, which is written once more
        as placeholders (`placeholder_of`) and fails only if those are refused too. This
        retry runs on failure only; the common path is one write."""
        try:
            if self._appender is None or any(ticket.contents is None for ticket in batch):
                # In a unit of work: a store without an appender, or a batch with changes to
                # record in the same transaction.
                self._write_in_transaction(batch)
            else:
                self._append(self._appender, batch)
        except AuditEventRefused as error:
            if len(batch) > 1:
                middle = len(batch) // 2
                self._write(batch[:middle])
                self._write(batch[middle:])
            elif not batch[0].placeholders:
                log.error("%s: the audit events of one request are recorded as placeholders", error)
                batch[0].as_placeholders()
                self._write(batch)
            else:
                self._fail(batch, error)
        except BaseException as error:
            self._fail(batch, error)

    def _append(self, appender: ChainAppender, batch: list[_Ticket]) -> None:
        """Through the store's appender: in one round trip, or, for a batch that reaches a
        signed checkpoint, in one transaction that stores the checkpoints too."""
        contents = [content for ticket in batch for content in ticket.contents or ()]
        required = [ticket.requires_generation for ticket in batch for _ in ticket.events]
        every = self._chain.every
        appended = appender.append_committed(contents, required, every)
        if appended.written:
            admitted = self._place(batch, contents, appended)
        else:

            def sign(head: AppendedBatch) -> list[Checkpoint]:
                nonlocal admitted
                admitted = self._place(batch, contents, head)
                return [
                    self._chain.checkpoint(event.seq, event.hash, event.time)
                    for ticket in batch
                    for event in ticket.linked
                    if event.seq is not None and event.hash is not None and event.seq % every == 0
                ]

            admitted = 0
            appended = appender.append_signed(contents, required, sign)
        self._written(batch, admitted, appended.generation)

    @staticmethod
    def _place(batch: list[_Ticket], contents: list[str], appended: AppendedBatch) -> int:
        """Give each admitted ticket its events as the store placed them after the head it
        found (`chain_hash`, as the store computed them); a stale one gets `StaleRead`."""
        generation = appended.generation
        seq, prev_hash, at, admitted = appended.head_seq, appended.head_hash, 0, 0
        for ticket in batch:
            events, at = ticket.events, at + len(ticket.events)
            ticket.linked, ticket.error = [], None
            if ticket.requires_generation not in (None, generation):
                ticket.error = StaleRead()
                continue
            first = at - len(events)
            for event, canonical in zip(events, contents[first:at], strict=True):
                seq += 1
                digest = chain_hash(seq, prev_hash, canonical)
                ticket.linked.append(with_fields(event, seq=seq, prev_hash=prev_hash, hash=digest))
                prev_hash = digest
            admitted += len(events)
        return admitted

    def _written(self, batch: list[_Ticket], events: int, generation: int) -> None:
        self.batches += 1
        self.events += events
        for ticket in batch:
            ticket.done = True
        if self._observer is not None:
            self._observer(generation)

    @staticmethod
    def _fail(batch: list[_Ticket], error: BaseException) -> None:
        for ticket in batch:
            ticket.error, ticket.done = error, True

    def _write_in_transaction(self, batch: list[_Ticket]) -> None:
        with self._uow_factory() as uow:
            head_seq, head_hash = uow.audit.lock_head()
            generation = uow.audit.generation()
            admitted = []
            for ticket in batch:
                required = ticket.requires_generation
                stale = required is not None and required != generation
                ticket.error = StaleRead() if stale else None
                if not stale:
                    admitted.append(ticket)
            events = [event for ticket in admitted for event in ticket.events]
            linked = self._chain.link(uow, events, head_seq, head_hash) if events else []
            start = 0
            for ticket in admitted:
                ticket.linked = linked[start : start + len(ticket.events)]
                start += len(ticket.events)
                if ticket.changes is not None:
                    ticket.changes.record_changes(uow, ticket.linked)
            uow.commit()
        self._written(batch, len(events), generation)

    def __repr__(self) -> str:
        return "GroupCommit()"


class _Ticket:
    __slots__ = (
        "changes",
        "contents",
        "done",
        "error",
        "events",
        "linked",
        "placeholders",
        "requires_generation",
    )

    def __init__(
        self,
        events: list[AuditEvent],
        changes: ChangeListener | None,
        requires_generation: int | None,
    ) -> None:
        self.events = events
        self.changes = changes
        self.requires_generation = requires_generation
        # The events' canonical contents for an appender; None: written in a unit of work.
        self.contents: list[str] | None = None
        self.linked: list[AuditEvent] = []
        self.error: BaseException | None = None
        self.done = False
        self.placeholders = False  # its events were refused: these are their placeholders

    def as_placeholders(self) -> None:
        self.events = [placeholder_of(event) for event in self.events]
        if self.contents is not None:
            self.contents = [canonical_content(event) for event in self.events]
        self.placeholders = True

    def outcome(self) -> list[AuditEvent]:
        if self.error is not None:
            if isinstance(self.error, ServiceError | StaleRead):
                raise self.error
            raise AuditUnavailable(
                f"the audit trail cannot be written: {type(self.error).__name__}"
            ) from None
        return self.linked


class Attempt:
    """One audited attempt in progress: fill in what is learnt, then record its success
    inside the unit of work that makes the change (so both commit together)."""

    def __init__(self, trail: AuditTrail, event: AuditEvent) -> None:
        self._trail = trail
        self._event = event
        self._learnt: dict[str, Any] = {}  # applied to the event when it is next looked at
        self.recorded = False
        self.linked: list[AuditEvent] = []

    @property
    def event(self) -> AuditEvent:
        if self._learnt:
            self._event, self._learnt = with_fields(self._event, **self._learnt), {}
        return self._event

    def learn(self, **fields: Any) -> None:
        self._learnt.update(fields)

    def succeed(self, uow: UnitOfWork, *, also: Sequence[AuditEvent] = (), **fields: Any) -> None:
        """Record success in the same transaction as the change (commit it with the change),
        with the events of what it did along the way (`also`, made by `related`)."""
        self.learn(outcome="success", **fields)
        self.linked = self._trail.chain.append(uow, [self.event, *also])
        if self._trail.changes is not None:
            self._trail.changes.record_changes(uow, self.linked)
        self.recorded = True

    def succeed_durably(
        self,
        *,
        also: Sequence[AuditEvent] = (),
        requires_generation: int | None = None,
        **fields: Any,
    ) -> None:
        """Record success of an attempt that changed nothing (a read), durably, before the
        caller answers: batched with concurrent requests' events when the trail has a
        `GroupCommit`, else in a transaction of its own. `requires_generation`: see
        `GroupCommit.record` (raises `StaleRead`, nothing recorded)."""
        self.learn(outcome="success", **fields)
        self.linked = self._trail.commit_now([self.event, *also], requires_generation)
        self.recorded = True

    def related(self, action: AuditAction, resource: str, **fields: Any) -> AuditEvent:
        """An event of the same caller and request, for something this attempt did."""
        return with_fields(self.event, action=str(action), resource=resource, details={}, **fields)


class ChangeListener(Protocol):
    """Told of every successful attempt inside its unit of work (`core.events.ChangeFeed`
    turns the changes among them into outbox events that commit with them)."""

    def record_changes(self, uow: UnitOfWork, events: Sequence[AuditEvent]) -> None: ...

    def changes_in(self, events: Sequence[AuditEvent]) -> bool:
        """Whether `record_changes` would write anything for these events."""
        ...


class AuditTrail:
    """Records audit events for one caller's requests (`RequestInfo` comes from the request)."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        chain: AuditChain,
        clock: Clock,
        sinks: Sequence[AuditSink] = (),
        request: RequestInfo | None = None,
        changes: ChangeListener | None = None,
        group: GroupCommit | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self.chain = chain
        self._clock = clock
        self._sinks = sinks
        self._request = request or RequestInfo()
        self.changes = changes
        self._group = group

    def commit_now(
        self, events: list[AuditEvent], requires_generation: int | None = None
    ) -> list[AuditEvent]:
        """Append `events` and commit them before returning (group-committed if configured)."""
        if self._group is not None:
            return self._group.record(events, self.changes, requires_generation)
        with self._uow_factory() as uow:
            linked = self.chain.append(uow, events, requires_generation=requires_generation)
            if self.changes is not None:
                self.changes.record_changes(uow, linked)
            uow.commit()
        return linked

    @contextmanager
    def attempt(
        self, actor: Principal, action: AuditAction, resource: str, **fields: Any
    ) -> Iterator[Attempt]:
        """Wrap a use case: a failure is recorded (denied, not found, error) and re-raised."""
        attempt = Attempt(self, self._event(actor, action, resource, **fields))
        try:
            yield attempt
        except ServiceError as error:
            self._record_failure(attempt, outcome_of(error), error.code)
            raise
        except Exception as error:
            self._record_failure(attempt, "error", type(error).__name__)
            raise
        if not attempt.recorded:
            raise RuntimeError(f"use case {action} did not record its success")  # a bug
        self._emit(attempt.linked)

    def _event(
        self, actor: Principal, action: AuditAction, resource: str, **fields: Any
    ) -> AuditEvent:
        return AuditEvent(
            time=self._clock.now(),
            actor=actor.id,
            actor_type=actor.kind,
            action=str(action),  # the text itself, as stored events hold it
            resource=resource,
            outcome="success",
            request_id=self._request.request_id,
            source_ip=self._request.source_ip,
            user_agent=self._request.user_agent,
            **fields,
        )

    def refused(self, actor: Principal, action: AuditAction, resource: str, reason: str) -> None:
        """Record an attempt refused before any use case ran (a bad token, say)."""
        self._record(replace(self._event(actor, action, resource), outcome="denied", reason=reason))

    def _record_failure(self, attempt: Attempt, outcome: str, reason: str) -> None:
        self._record(replace(attempt.event, outcome=outcome, reason=reason))

    def _record(self, event: AuditEvent) -> None:
        event = event.bounded()  # the log line below quotes it
        outcome = event.outcome
        try:
            linked = self.commit_now([event])  # the change feed skips what did not succeed
        except Exception:  # the caller sees the original failure; the audit gap is logged
            log.error(
                "could not record audit event %s %s (%s)",
                event.action,
                event.resource,
                outcome,
                exc_info=True,
            )
        else:
            self._emit(linked)

    def _emit(self, events: list[AuditEvent]) -> None:
        """Copy committed events to the configured sinks; a failing sink is only logged."""
        for sink in self._sinks:
            try:
                sink.emit(events)
            except Exception:
                log.warning("audit sink %s failed", sink.name, exc_info=True)
