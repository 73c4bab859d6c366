"""Group commit through a store's one-round-trip append (`ChainAppender`), on the fakes: the
chain it makes is the one the unit of work makes, batches that reach a signed checkpoint or
carry changes go through the unit of work, stale reads are left out, a store that is down fails
the batch, and an event the store refuses fails no other caller's."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.group_commit import GroupCommit
from core.audit_chain import (
    PLACEHOLDER_NOTE,
    AuditChain,
    canonical_content,
    chain_hash,
    verify_chain,
)
from core.domain.audit import AppendedBatch, AuditEvent
from core.domain.errors import AuditEventRefused, AuditUnavailable
from core.events import ChangeFeed
from ports.audit_log import StaleRead
from tests.fakes import (
    CHECKPOINT_KEY,
    FakeAuditRepository,
    FakeChainAppender,
    FakeDatabase,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
)


def event(n: int, **fields: object) -> AuditEvent:
    values: dict[str, object] = {
        "time": datetime(2026, 11, 29, 3, 0, n % 60, 1234, tzinfo=UTC),
        "actor": "service:reader",
        "actor_type": "service",
        "action": "secret.read_value",
        "resource": f"secret:{n}",
        "outcome": "success",
        **fields,
    }
    return AuditEvent(**values)  # type: ignore[arg-type]


def verified(db: FakeUnitOfWorkFactory, every: int) -> tuple[int, object]:
    with db() as uow:
        return verify_chain(
            uow.audit.events(), uow.audit.checkpoints(), CHECKPOINT_KEY, checkpoint_every=every
        )


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"note": 'quotes " and \\ backslashes', "nested": {"b": 2, "a": [1, None, True]}},
        {"line": "a\nb\tc", "unicode": "café ☕ 秘密", "emoji": "🔑"},
    ],
)
def test_chain_hash_is_the_hash_of_the_canonical_document(details: dict[str, object]) -> None:
    """The hash a store computes from the content's canonical JSON is the one defined on the
    whole document (sorted keys, compact, ASCII)."""
    e = event(1, details=details, user_agent="agent/1.0 \u00e9", reason=None)
    document = json.dumps(
        {"seq": 41, "prev": "ab" * 32, "event": e.content()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    canonical = canonical_content(e)
    assert canonical.isascii() and "\n" not in canonical
    assert chain_hash(41, "ab" * 32, canonical) == hashlib.sha256(document.encode()).hexdigest()


def test_the_appender_writes_the_chain_the_unit_of_work_would() -> None:
    db = FakeUnitOfWorkFactory()
    appender = FakeChainAppender(db)
    seen: list[int] = []
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), seen.append, appender)
    linked = group.append([event(1), event(2, details={"k": "v"})])
    linked += group.append([event(3)], requires_generation=0)
    assert appender.written == 2
    assert seen == [0, 0]
    stored = db.database.audit_events()
    assert [(e.seq, e.prev_hash, e.hash) for e in linked] == [
        (e.seq, e.prev_hash, e.hash) for e in stored
    ]
    assert [e.resource for e in stored] == ["secret:1", "secret:2", "secret:3"]
    assert stored[1].details == {"k": "v"}
    assert verified(db, 100) == (3, None)


def test_a_batch_that_reaches_a_checkpoint_is_signed_in_its_transaction() -> None:
    db = FakeUnitOfWorkFactory()
    appender = FakeChainAppender(db)
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 3), None, appender)
    for n in range(1, 8):
        group.append([event(n)])
    group.append([event(8), event(9), event(10)])  # reaches 9: signed, with 8 and 10
    assert appender.calls == 8
    assert appender.signed_calls == 3  # seq 3, 6 and 9
    with db() as uow:
        assert [c.seq for c in uow.audit.checkpoints()] == [3, 6, 9]
    assert verified(db, 3) == (10, None)


class FailingSignature(FakeChainAppender):
    def append_signed(self, contents, required_generations, sign):  # type: ignore[no-untyped-def]
        def refuse(appended: AppendedBatch) -> list:  # type: ignore[type-arg]
            sign(appended)
            raise AuditUnavailable("the audit trail cannot be written: OSError")

        return super().append_signed(contents, required_generations, refuse)


def test_a_checkpoint_that_cannot_be_signed_fails_the_batch_and_stores_nothing() -> None:
    db = FakeUnitOfWorkFactory()
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 2), None, FailingSignature(db))
    group.append([event(1)])
    with pytest.raises(AuditUnavailable):
        group.append([event(2)])
    assert [e.seq for e in db.database.audit_events()] == [1]
    assert verified(db, 2) == (1, None)


def test_a_stale_read_is_left_out_and_nothing_of_it_is_recorded() -> None:
    db = FakeUnitOfWorkFactory()
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, FakeChainAppender(db))
    with db() as uow:  # a change: the generation moves to 1
        uow.secrets.delete(uuid.uuid4())
        uow.commit()
    with pytest.raises(StaleRead):
        group.append([event(1)], requires_generation=0)
    assert [e.seq for e in group.append([event(2)], requires_generation=1)] == [1]
    assert [e.resource for e in db.database.audit_events()] == ["secret:2"]


def test_a_batch_with_changes_to_record_goes_through_the_unit_of_work() -> None:
    db = FakeUnitOfWorkFactory()
    appender = FakeChainAppender(db)
    feed = ChangeFeed(targets=["hooks"])
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, appender)
    group.append([event(1)], feed)  # a read: no change, the appender takes it
    secret = uuid.uuid4()
    change = event(2, action="secret.delete", resource=f"secret:{secret}")
    assert feed.changes_in([change])
    group.append([change], feed)
    assert appender.calls == 1
    assert [m.type for m in db.database.outbox_messages()] == ["secret.deleted"]
    assert verified(db, 100) == (2, None)


class RefusingAppender(FakeChainAppender):
    def append_committed(self, *args: object, **kwargs: object) -> AppendedBatch:
        raise AuditUnavailable("the audit trail cannot be written: OperationalError")


def test_an_append_that_fails_fails_the_batch_and_records_nothing() -> None:
    db = FakeUnitOfWorkFactory()
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, RefusingAppender(db))
    with pytest.raises(AuditUnavailable):
        group.append([event(1)])
    assert db.database.audit_events() == []
    assert group.batches == 0


def test_concurrent_records_make_one_unbroken_chain_with_its_checkpoints() -> None:
    db = FakeUnitOfWorkFactory()
    appender = FakeChainAppender(db)
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 7), None, appender)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for n in range(40):
                group.append([event(n, actor=f"service:t{thread}")])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert verified(db, 7) == (320, None)
    assert group.events == 320
    assert appender.written > 0
    with db() as uow:
        assert [c.seq for c in uow.audit.checkpoints()] == list(range(7, 321, 7))


# -- one event the store refuses fails no other caller ---------------------------------------

POISON = "\u2603"  # a character the database's encoding cannot hold, say
UNSTORABLE_ACTION = "x.unstorable"  # refused whatever the texts: even as a placeholder


def refused(event: dict[str, Any]) -> bool:
    return event["action"] == UNSTORABLE_ACTION or any(
        POISON in value for value in event.values() if isinstance(value, str)
    )


def refuses(contents: Sequence[str]) -> bool:
    return any(refused(json.loads(content)) for content in contents)


class PickyAppender(FakeChainAppender):
    """Refuses the data of any batch holding a poisoned event, as PostgreSQL refuses a row it
    cannot store (nothing of the batch is written); with `down`, refuses every batch as a
    database that cannot be reached. The first call waits for `release`, so that the callers
    started meanwhile queue up for one batch."""

    def __init__(self, db: FakeUnitOfWorkFactory) -> None:
        super().__init__(db)
        self.entered, self.release = threading.Event(), threading.Event()
        self.batch_sizes: list[int] = []
        self.down = False

    def append_committed(self, contents, required_generations, checkpoint_every):  # type: ignore[no-untyped-def]
        self.entered.set()
        self.release.wait(5)
        self.batch_sizes.append(len(contents))
        if self.down:
            raise AuditUnavailable("the audit trail cannot be written: OperationalError")
        if refuses(contents):
            raise AuditEventRefused("the audit trail cannot be written: DataError")
        return super().append_committed(contents, required_generations, checkpoint_every)


class PickyAuditRepository(FakeAuditRepository):
    def insert(self, events: Sequence[AuditEvent]) -> None:
        if any(refused(e.content()) for e in events):
            raise AuditEventRefused("the audit trail cannot be written: DataError")
        super().insert(events)


class PickyUnitOfWork(FakeUnitOfWork):
    def __init__(self, database: FakeDatabase, *, read_only: bool = False) -> None:
        super().__init__(database, read_only=read_only)
        self.audit = PickyAuditRepository(self)


class PickyDatabase(FakeUnitOfWorkFactory):
    """The fake database refusing poisoned events in a unit of work (SQLite's path); its first
    unit of work waits for `release`, as `PickyAppender`'s first call does."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        self.entered.set()
        self.release.wait(5)
        return PickyUnitOfWork(self.database, read_only=read_only)


def record_at_once(
    group: GroupCommit, gate: PickyAppender | PickyDatabase, batch: list[AuditEvent]
) -> dict[str, Any]:
    """Record the first event alone (its write waits), then the others from threads of their
    own, queued up for one batch: each one's outcome, by resource."""
    outcomes: dict[str, Any] = {}

    def record(one: AuditEvent) -> None:
        try:
            [linked] = group.append([one])
            outcomes[one.resource] = linked
        except BaseException as error:  # the outcome under test
            outcomes[one.resource] = error

    leader = threading.Thread(target=record, args=(batch[0],))
    leader.start()
    assert gate.entered.wait(5)
    others = [threading.Thread(target=record, args=(one,)) for one in batch[1:]]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 5
    while group.queued < len(others) and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.release.set()
    for thread in [leader, *others]:
        thread.join()
    return outcomes


def test_a_batch_refused_for_one_event_is_written_again_without_it() -> None:
    db = FakeUnitOfWorkFactory()
    appender = PickyAppender(db)
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, appender)
    batch = [event(n) for n in range(8)] + [event(8, resource=f"secret:{POISON}")]
    batch += [event(n) for n in range(9, 16)]

    outcomes = record_at_once(group, appender, batch)

    assert appender.batch_sizes[:2] == [1, 15]  # the others, queued as one batch
    assert all(isinstance(outcomes[f"secret:{n}"], AuditEvent) for n in range(16) if n != 8)
    placeholder = outcomes[f"secret:{POISON}"]
    assert isinstance(placeholder, AuditEvent) and placeholder.details == PLACEHOLDER_NOTE
    assert placeholder.resource == "secret:\\u2603"  # in ASCII
    stored = db.database.audit_events()
    assert sorted(e.resource for e in stored) == sorted(
        [f"secret:{n}" for n in range(16) if n != 8] + ["secret:\\u2603"]
    )
    assert len(appender.batch_sizes) <= 2 + 2 * 4 + 1  # halves down to the one event
    assert verified(db, 100) == (16, None)


def test_an_event_refused_even_as_a_placeholder_fails_its_caller_alone() -> None:
    db = FakeUnitOfWorkFactory()
    appender = PickyAppender(db)
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, appender)
    batch = [event(1), event(2, action=UNSTORABLE_ACTION), event(3)]

    outcomes = record_at_once(group, appender, batch)

    assert isinstance(outcomes["secret:2"], AuditEventRefused)  # a 503 for that caller only
    assert [e.resource for e in db.database.audit_events()] == ["secret:1", "secret:3"]


def test_in_a_unit_of_work_too_a_refused_event_fails_no_other() -> None:
    db = PickyDatabase()
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100))
    batch = [event(n) for n in range(6)] + [event(6, resource=f"secret:{POISON}"), event(7)]

    outcomes = record_at_once(group, db, batch)

    assert all(isinstance(outcome, AuditEvent) for outcome in outcomes.values())
    assert outcomes[f"secret:{POISON}"].details == PLACEHOLDER_NOTE
    assert len(db.database.audit_events()) == 8
    assert verified(db, 100) == (8, None)


def test_a_store_that_is_down_fails_the_whole_batch_without_a_retry() -> None:
    db = FakeUnitOfWorkFactory()
    appender = PickyAppender(db)
    appender.down = True
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, appender)

    outcomes = record_at_once(group, appender, [event(n) for n in range(6)])

    assert all(isinstance(outcome, AuditUnavailable) for outcome in outcomes.values())
    assert not any(isinstance(outcome, AuditEventRefused) for outcome in outcomes.values())
    assert appender.batch_sizes == [1, 5]  # each batch tried once
    assert db.database.audit_events() == []


def test_events_are_bounded_before_they_are_queued() -> None:
    db = FakeUnitOfWorkFactory()
    appender = FakeChainAppender(db)
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, appender)
    [linked] = group.append([event(1, resource="x\x00", version=2**63)])
    [stored] = db.database.audit_events()
    assert stored.resource == linked.resource == "x\\x00"
    assert stored.version is linked.version is None
    assert verified(db, 100) == (1, None)
