"""The audit chain's stored side: the repository, the parallel verification of segments,
and a store's one-round-trip append.

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from core.domain.audit import (
    AppendedBatch,
    AuditEvent,
    AuditFilter,
    BrokenLink,
    ChainLink,
    ChainSegment,
    Checkpoint,
)


class AuditRepository(abc.ABC):
    """The stored hash chain. Appending goes through `core.audit_chain.AuditChain`."""

    @abc.abstractmethod
    def lock_head(self) -> tuple[int, str]:
        """Take the chain's lock for this transaction; the last event's seq and hash
        (0 and the genesis hash while the chain is empty)."""

    @abc.abstractmethod
    def generation(self) -> int:
        """The change generation: how many committed transactions changed secrets, versions,
        scopes, bindings or service accounts. Read with `lock_head` (no extra round trip), so
        under the chain's lock it cannot move until this transaction ends."""

    @abc.abstractmethod
    def insert(self, events: Sequence[AuditEvent]) -> None:
        """Store events already placed in the chain."""

    @abc.abstractmethod
    def set_head(self, seq: int, digest: str) -> None: ...

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Store events already placed in the chain and move the head to the last of them
        (a store may do both in one round trip)."""
        self.insert(events)
        last = events[-1]
        assert last.seq is not None and last.hash is not None
        self.set_head(last.seq, last.hash)

    def append_at_commit(
        self, events: Sequence[AuditEvent], contents: Sequence[str], checkpoint_every: int
    ) -> list[AuditEvent] | None:
        """Append `events` (bounded; `contents` their canonical JSON) when this transaction
        commits, sent with its COMMIT, so that the chain's lock is held inside the store only
        (never across the caller's round trips). The list returned is filled with the events
        as chained once the commit succeeded; if the append would reach a seq that needs a
        signed checkpoint, the commit raises `core.audit_chain.CheckpointDue` and nothing is
        committed (do the transaction again with `AuditChain.append`). None: this store
        cannot, append now."""
        return None

    @abc.abstractmethod
    def head(self) -> tuple[int, str]:
        """The recorded end of the chain, read without taking its lock."""

    @abc.abstractmethod
    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    @abc.abstractmethod
    def checkpoints(self) -> list[Checkpoint]:
        """Every signed checkpoint, oldest first."""

    @abc.abstractmethod
    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AuditEvent]:
        """Events in chain order, streamed."""

    @abc.abstractmethod
    def chain_links(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[ChainLink]:
        """What verification reads of `events` (`core.audit_chain.link_of` of each), streamed,
        without building every event: verifying a long chain is bound by this."""

    @abc.abstractmethod
    def search(self, criteria: AuditFilter, limit: int) -> list[AuditEvent]:
        """Newest first, at most `limit`."""

    @abc.abstractmethod
    def resources_with(
        self, resources: Sequence[str], action: str, outcome: str, since: datetime
    ) -> set[str]:
        """Which of `resources` have an event of `action` with `outcome` since `since`."""

    @abc.abstractmethod
    def prune(self, through_seq: int) -> int:
        """Delete the events up to and including `through_seq`; how many went."""

    @abc.abstractmethod
    def first_seq(self) -> int | None:
        """The oldest event still stored, or None."""


class ChainSegments(abc.ABC):
    """Verification of consecutive segments of the audit chain side by side (in several
    processes), each from its own anchor. Optional: without it, a chain is verified in one
    pass."""

    processes: int  # how many segments it verifies at once

    @abc.abstractmethod
    def verify(
        self, segments: Sequence[ChainSegment], checkpoint_key: bytes, checkpoint_every: int
    ) -> list[tuple[int, BrokenLink | None]] | None:
        """For each segment, in order, what `core.audit_chain.verify_links` finds in its events
        (`first` to `last`, from `anchor`, with its checkpoints); None when they could not be
        verified this way (the caller then verifies in one pass)."""


class ChainAppender(abc.ABC):
    """A store's append of a whole batch of audit events as one committed transaction in one
    round trip: lock the chain, hash the events after its head (`core.audit_chain.chain_hash`),
    store them, move the head, commit. The chain's lock is then never held across the
    caller's waits. Optional: a store without it appends through the unit of work."""

    @abc.abstractmethod
    def append_committed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        checkpoint_every: int,
    ) -> AppendedBatch:
        """Append the events whose canonical contents (`core.audit_chain.canonical_content`) are
        given, in order, leaving out those whose required generation (not None) is not the
        current one. Writes nothing (`written` False) if the batch would reach a seq that is a
        multiple of `checkpoint_every`: its signed checkpoint needs a key the store does not
        hold. Raises `AuditEventRefused` when the store refuses an event's data (nothing is
        written; the caller tries the others without it), `AuditUnavailable` when it cannot
        be written at all."""

    @abc.abstractmethod
    def append_signed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        sign: Callable[[AppendedBatch], Sequence[Checkpoint]],
    ) -> AppendedBatch:
        """`append_committed` for a batch that reaches a signed checkpoint, in one transaction:
        append (holding the chain's lock), ask `sign` for the checkpoints of the events as
        placed after the head it found, store them, commit. Nothing is stored if `sign` or
        the store fails."""
