"""Group commit through a store's one-round-trip append (`ChainAppender`), on the fakes: the
chain it makes is the one the unit of work makes, batches that reach a signed checkpoint or
carry changes go through the unit of work, stale reads are left out, failures fail the batch."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime

import pytest

from core.audit import (
    AuditChain,
    AuditEvent,
    GroupCommit,
    StaleRead,
    canonical_content,
    chain_hash,
    verify_chain,
)
from core.errors import AuditUnavailable
from core.events import ChangeFeed
from ports.persistence import AppendedBatch
from tests.fakes import CHECKPOINT_KEY, FakeChainAppender, FakeUnitOfWorkFactory


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
    linked = group.record([event(1), event(2, details={"k": "v"})])
    linked += group.record([event(3)], requires_generation=0)
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
        group.record([event(n)])
    group.record([event(8), event(9), event(10)])  # reaches 9: signed, with 8 and 10
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
    group.record([event(1)])
    with pytest.raises(AuditUnavailable):
        group.record([event(2)])
    assert [e.seq for e in db.database.audit_events()] == [1]
    assert verified(db, 2) == (1, None)


def test_a_stale_read_is_left_out_and_nothing_of_it_is_recorded() -> None:
    db = FakeUnitOfWorkFactory()
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, FakeChainAppender(db))
    with db() as uow:  # a change: the generation moves to 1
        uow.secrets.delete(uuid.uuid4())
        uow.commit()
    with pytest.raises(StaleRead):
        group.record([event(1)], requires_generation=0)
    assert [e.seq for e in group.record([event(2)], requires_generation=1)] == [1]
    assert [e.resource for e in db.database.audit_events()] == ["secret:2"]


def test_a_batch_with_changes_to_record_goes_through_the_unit_of_work() -> None:
    db = FakeUnitOfWorkFactory()
    appender = FakeChainAppender(db)
    feed = ChangeFeed(targets=["hooks"])
    group = GroupCommit(db, AuditChain(CHECKPOINT_KEY, 100), None, appender)
    group.record([event(1)], feed)  # a read: no change, the appender takes it
    secret = uuid.uuid4()
    change = event(2, action="secret.delete", resource=f"secret:{secret}")
    assert feed.changes_in([change])
    group.record([change], feed)
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
        group.record([event(1)])
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
                group.record([event(n, actor=f"service:t{thread}")])
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
