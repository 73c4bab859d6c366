"""The audit log port's contract (`ports.audit_log.AuditLog`), run on every adapter: the plain
one (a transaction per call) and the group commit (through the unit of work, and through the
store's one-round-trip appender). What a use case relies on holds for each: the events come
back chained once committed, bounded; a stale generation records nothing; the change listener
writes in the same transaction; a store that cannot be written fails the caller."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.audit_log import TransactionalAuditLog
from adapters.group_commit import GroupCommit
from core.audit_chain import AuditChain, verify_chain
from core.domain.audit import AuditEvent
from core.domain.errors import AuditUnavailable
from core.events import ChangeFeed
from ports.audit_log import AuditLog, StaleRead
from tests.fakes import CHECKPOINT_KEY, FakeChainAppender, FakeUnitOfWorkFactory

EVERY = 3  # a signed checkpoint every third event

Adapter = Callable[[FakeUnitOfWorkFactory], AuditLog]
ADAPTERS: dict[str, Adapter] = {
    "plain": lambda db: TransactionalAuditLog(db, AuditChain(CHECKPOINT_KEY, EVERY)),
    "group": lambda db: GroupCommit(db, AuditChain(CHECKPOINT_KEY, EVERY)),
    "group+appender": lambda db: GroupCommit(
        db, AuditChain(CHECKPOINT_KEY, EVERY), None, FakeChainAppender(db)
    ),
}


@pytest.fixture(params=sorted(ADAPTERS))
def made(request: pytest.FixtureRequest) -> tuple[FakeUnitOfWorkFactory, AuditLog]:
    db = FakeUnitOfWorkFactory()
    return db, ADAPTERS[request.param](db)


def event(n: int, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "time": datetime(2026, 12, 5, tzinfo=UTC),
        "actor": "service:reader",
        "actor_type": "service",
        "action": "secret.read_value",
        "resource": f"secret:{n}",
        "outcome": "success",
        **fields,
    }
    return AuditEvent(**values)


def stored(db: FakeUnitOfWorkFactory) -> list[AuditEvent]:
    return db.database.audit_events()


def test_the_events_come_back_chained_and_are_committed_when_it_returns(
    made: tuple[FakeUnitOfWorkFactory, AuditLog],
) -> None:
    db, log = made
    linked = log.append([event(1), event(2)]) + log.append([event(3)])
    assert [e.seq for e in linked] == [1, 2, 3]
    assert [(e.seq, e.hash) for e in stored(db)] == [(e.seq, e.hash) for e in linked]
    with db() as uow:
        checkpoints = list(uow.audit.checkpoints())
    assert [c.seq for c in checkpoints] == [3]
    assert verify_chain(stored(db), checkpoints, CHECKPOINT_KEY, checkpoint_every=EVERY) == (
        3,
        None,
    )


def test_the_events_are_bounded_before_they_are_chained(
    made: tuple[FakeUnitOfWorkFactory, AuditLog],
) -> None:
    db, log = made
    [linked] = log.append([event(1, user_agent="x" * 100_000)])
    assert linked.user_agent is not None and len(linked.user_agent) < 100_000
    assert [e.user_agent for e in stored(db)] == [linked.user_agent]


def test_a_stale_generation_records_nothing(
    made: tuple[FakeUnitOfWorkFactory, AuditLog],
) -> None:
    db, log = made
    log.append([event(1)], requires_generation=0)
    with db() as uow:  # a change: the generation moves on
        uow.secrets.delete(uuid.uuid4())
        uow.commit()
    with pytest.raises(StaleRead):
        log.append([event(2)], requires_generation=0)
    log.append([event(3)], requires_generation=1)
    assert [e.resource for e in stored(db)] == ["secret:1", "secret:3"]


def test_the_change_listener_writes_in_the_same_transaction(
    made: tuple[FakeUnitOfWorkFactory, AuditLog],
) -> None:
    db, log = made
    feed = ChangeFeed(targets=["hooks"])
    change = event(1, action="secret.delete", resource=f"secret:{uuid.uuid4()}")
    log.append([event(0)], feed)  # a read: nothing for the outbox
    log.append([change], feed)
    assert [m.type for m in db.database.outbox_messages()] == ["secret.deleted"]
    assert len(stored(db)) == 2


def test_a_store_that_cannot_be_written_fails_the_caller() -> None:
    class Broken(FakeUnitOfWorkFactory):
        def __call__(self) -> Any:
            raise ConnectionError("the database is gone")

    for name, adapter in ADAPTERS.items():
        db = Broken()
        log = adapter(db) if name != "group+appender" else GroupCommit(db, AuditChain(b"k" * 32))
        with pytest.raises((ConnectionError, AuditUnavailable)):
            log.append([event(1)])
        assert stored(db) == []
