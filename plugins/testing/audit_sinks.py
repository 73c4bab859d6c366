"""The audit sink contract: cases every `ports.audit.AuditSink` passes.

Subclass `AuditSinkContract` and give it a `sink` fixture and a `delivered` fixture: a function
that returns what the sink delivered so far, one JSON object (a dict) per event, in order::

    from plugins.testing import AuditSinkContract

    class TestSyslogSink(AuditSinkContract):
        @pytest.fixture
        def sink(self, syslog_server):
            sink = SyslogSink(syslog_server.address)
            yield sink
            sink.close()

        @pytest.fixture
        def delivered(self, syslog_server):
            return syslog_server.messages_as_json

The rules it checks, besides the signatures of the port:

- Every event emitted is delivered once, in chain order, with its chain fields (`seq`,
  `prev_hash`, `hash`) and its content (`action`, `actor`, `outcome`, `details`…).
- Emitting nothing delivers nothing; events emitted from several threads at once are all
  delivered whole (no record is cut or interleaved with another).
- `emit` does not change the events it is given.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from core.domain.audit import AuditEvent
from ports.audit import AuditSink

Delivered = Callable[[], Sequence[Mapping[str, Any]]]
THREADS, EVENTS_PER_THREAD = 8, 25


def chained_events(
    count: int, first_seq: int = 1, actor: str = "user:contract"
) -> list[AuditEvent]:
    """Events as the trail hands them to sinks: committed, with their chain fields set."""
    events = []
    previous = "0" * 64
    for seq in range(first_seq, first_seq + count):
        digest = f"{seq:064x}"
        events.append(
            AuditEvent(
                time=datetime(2024, 3, 1, 9, 30, seq % 60, tzinfo=UTC),
                actor=actor,
                actor_type="user",
                action="secret.read",
                resource=f"secret:contract-{seq}",
                outcome="success",
                request_id=f"req-{seq}",
                scope="project:contract",
                version=1,
                details={"seq_note": seq, "unicode": "päss ✓"},
                seq=seq,
                prev_hash=previous,
                hash=digest,
            )
        )
        previous = digest
    return events


class AuditSinkContract:
    """The contract cases. A subclass provides the `sink` and `delivered` fixtures."""

    @pytest.fixture
    def sink(self) -> AuditSink:
        raise NotImplementedError("an AuditSinkContract subclass provides the `sink` fixture")

    @pytest.fixture
    def delivered(self) -> Delivered:
        raise NotImplementedError("an AuditSinkContract subclass provides `delivered`")

    def test_it_declares_a_name(self, sink: AuditSink) -> None:
        assert isinstance(sink.name, str) and sink.name

    def test_events_are_delivered_once_in_chain_order_with_their_content(
        self, sink: AuditSink, delivered: Delivered
    ) -> None:
        events = chained_events(5)
        sink.emit(events[:2])
        sink.emit(events[2:])
        records = list(delivered())
        assert [record["seq"] for record in records] == [1, 2, 3, 4, 5]
        for event, record in zip(events, records, strict=True):
            assert (record["hash"], record["prev_hash"]) == (event.hash, event.prev_hash)
            for name in ("action", "actor", "outcome", "resource", "request_id"):
                assert record[name] == getattr(event, name), name
            assert record["details"] == event.details

    def test_emitting_nothing_delivers_nothing(self, sink: AuditSink, delivered: Delivered) -> None:
        sink.emit([])
        assert list(delivered()) == []

    def test_events_from_many_threads_are_all_delivered_whole(
        self, sink: AuditSink, delivered: Delivered
    ) -> None:
        batches = [
            chained_events(EVENTS_PER_THREAD, 1 + n * EVENTS_PER_THREAD, actor=f"user:t{n}")
            for n in range(THREADS)
        ]
        threads = [
            threading.Thread(target=lambda batch=batch: [sink.emit([e]) for e in batch])
            for batch in batches
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        records = list(delivered())
        assert sorted(record["seq"] for record in records) == list(
            range(1, 1 + THREADS * EVENTS_PER_THREAD)
        )
        for record in records:
            assert record["actor"] == f"user:t{(record['seq'] - 1) // EVENTS_PER_THREAD}"

    def test_emit_leaves_the_events_as_they_were(self, sink: AuditSink) -> None:
        events = chained_events(3)
        before = copy.deepcopy(events)
        sink.emit(events)
        assert events == before
