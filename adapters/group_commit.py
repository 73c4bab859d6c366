"""The group-committing adapter of the audit log port (`ports.audit_log.AuditLog`).

Under load, a transaction per read is the service's ceiling: every read appends to the one
hash chain, under its lock. Here the events of concurrent requests are committed together, in
one transaction (or, with the store's `ChainAppender`, in one round trip), and each caller
still waits for the commit that holds its events before it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.audit_chain import AuditChain, canonical_content, chain_hash, placeholder_of
from core.domain.audit import AppendedBatch, AuditEvent, Checkpoint, with_fields
from core.domain.errors import AuditEventRefused, AuditUnavailable, ServiceError
from ports.audit_log import AuditLog, ChangeListener, StaleRead
from ports.repositories.audit import ChainAppender
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class GroupCommit(AuditLog):
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

    def append(
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
