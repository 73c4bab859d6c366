"""Attacks on the audit trail below the request layer (issue #14, High 2), on real SQLite and
PostgreSQL databases: events built with hostile fields (NULs, lone surrogates, control
characters, huge texts, numbers past their columns, deep details), recorded through the group
commit as the container builds it while other callers' reads are recorded beside them. Whatever
the web layer lets through, no read fails for them and each of them is stored."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.db.audit_appender import PostgresChainAppender
from adapters.db.uow import SqlUnitOfWork
from adapters.group_commit import GroupCommit
from core.audit import AuditTrail
from core.audit_chain import PLACEHOLDER_NOTE, AuditChain, verify_links
from core.domain.audit import AuditEvent, RequestInfo
from core.domain.callers import Caller
from core.domain.errors import NotFound
from core.domain.values import Principal
from tests.fakes import CHECKPOINT_KEY, FixedClock

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
READER = Principal("service:reader", "service")
HOSTILE = "\x00\ud800\udfff\x1b[2J\r\n\t\x7f\x9f é ✓ 🔑" * 300
HOSTILE_DETAILS: dict[Any, Any] = {
    "text": HOSTILE,
    "nested": {"deeper": [{"k": [HOSTILE]}] * 3},
    "numbers": [2**80, float("nan"), float("inf"), -0.0],
    HOSTILE: "a hostile key",
    7: "a number key",
}
HOSTILE_VERSIONS = (2**31, 2**63, 10**30, -(2**63) - 1)


@pytest.fixture
def group(engine: Engine) -> Iterator[GroupCommit]:
    """The group commit as the container builds it: PostgreSQL's one-round-trip append, or
    SQLite's unit of work."""
    appender = PostgresChainAppender(engine) if engine.dialect.name == "postgresql" else None
    yield GroupCommit(
        functools.partial(SqlUnitOfWork, engine),
        AuditChain(CHECKPOINT_KEY, checkpoint_every=25),
        None,
        appender,
    )
    if appender is not None:
        appender.close()


def trail_for(engine: Engine, group: GroupCommit) -> AuditTrail:
    return AuditTrail(group, AuditChain(CHECKPOINT_KEY, 25), FixedClock(NOW))


def stored(engine: Engine) -> list[AuditEvent]:
    with SqlUnitOfWork(engine) as uow:
        return list(uow.audit.events())


def verified(engine: Engine) -> tuple[int, Any]:
    with SqlUnitOfWork(engine) as uow:
        return verify_links(
            uow.audit.chain_links(), uow.audit.checkpoints(), CHECKPOINT_KEY, checkpoint_every=25
        )


def read(engine: Engine, group: GroupCommit, number: int) -> None:
    """A legitimate read's event, recorded durably as a value read records it."""
    reader = Caller.of(READER, RequestInfo(f"read-{number}", "192.0.2.1", "client/1.0"))
    trail = trail_for(engine, group)
    with trail.attempt(reader, "secret.read_value", f"secret:{number}", version=1) as attempt:
        attempt.succeed_durably()


def refused(engine: Engine, group: GroupCommit, number: int) -> None:
    """A request refused before any use case ran, every request fact hostile."""
    request = RequestInfo(f"poison-{number}", HOSTILE, HOSTILE)
    caller = Caller.of(Principal(f"user:{HOSTILE}", "user"), request)
    trail_for(engine, group).refused(caller, "auth.authenticate", f"/api/v1/{HOSTILE}", HOSTILE)


def failed(engine: Engine, group: GroupCommit, number: int) -> None:
    """A use case that failed, with a version past its column and hostile details."""
    reader = Caller.of(READER, RequestInfo(f"poison-{number}", HOSTILE, HOSTILE))
    trail = trail_for(engine, group)
    version = HOSTILE_VERSIONS[number % len(HOSTILE_VERSIONS)]
    with (
        pytest.raises(NotFound),
        trail.attempt(
            reader,
            "secret.read_value",
            f"secret:{HOSTILE}",
            scope=HOSTILE,
            scope_path=HOSTILE,
            version=version,
            details=HOSTILE_DETAILS,
        ),
    ):
        raise NotFound("no such secret")


def at_once(work: dict[str, Callable[[int], None]], count: int) -> dict[str, list[BaseException]]:
    """Each kind of work `count` times from a thread of its own, all started together; the
    errors of each kind."""
    errors: dict[str, list[BaseException]] = {name: [] for name in work}
    start = threading.Barrier(len(work))

    def run(name: str) -> None:
        start.wait()
        for number in range(count):
            try:
                work[name](number)
            except BaseException as error:  # counted by the test
                errors[name].append(error)

    threads = [threading.Thread(target=run, args=(name,)) for name in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_hostile_events_fail_no_read_and_are_each_stored(
    engine: Engine, group: GroupCommit
) -> None:
    errors = at_once(
        {
            "read 1": lambda n: read(engine, group, n),
            "read 2": lambda n: read(engine, group, 1000 + n),
            "refused": lambda n: refused(engine, group, n),
            "failed": lambda n: failed(engine, group, 1000 + n),
        },
        count=40,
    )

    assert errors == {"read 1": [], "read 2": [], "refused": [], "failed": []}
    events = stored(engine)
    assert len(events) == 160
    poison = [e for e in events if (e.request_id or "").startswith("poison-")]
    assert len(poison) == 80
    assert all(e.details != PLACEHOLDER_NOTE for e in events)  # bounded, never refused
    for event in poison:
        assert "\x00" not in event.resource and "\\x00\ufffd\ufffd" in event.resource
        assert len(event.user_agent or "") == 512 and (event.user_agent or "").endswith("…")
    versions = {e.details["out_of_range"]["version"] for e in poison if e.outcome == "not_found"}
    assert versions == {str(v) for v in HOSTILE_VERSIONS}
    assert verified(engine) == (160, None)
    assert group.batches < 160  # written in batches


def test_an_event_the_database_refuses_is_stored_as_a_placeholder_beside_the_others(
    engine: Engine, group: GroupCommit
) -> None:
    """An event that passes the bounds and that the database refuses even so (no actor: a
    NOT NULL column) fails no other read; it is stored with its texts in ASCII instead."""

    def unstorable(number: int) -> None:
        event = AuditEvent(
            time=NOW,
            actor=None,  # type: ignore[arg-type]
            actor_type="user",
            action="secret.read_value",
            resource=f"secret:{number}-é",
            outcome="success",
            request_id=f"unstorable-{number}",
        )
        group.append([event])

    errors = at_once(
        {
            "read 1": lambda n: read(engine, group, n),
            "read 2": lambda n: read(engine, group, 1000 + n),
            "unstorable": unstorable,
        },
        count=20,
    )

    assert errors == {"read 1": [], "read 2": [], "unstorable": []}
    events = stored(engine)
    placeholders = [e for e in events if e.details == PLACEHOLDER_NOTE]
    assert sorted(e.request_id or "" for e in placeholders) == sorted(
        f"unstorable-{n}" for n in range(20)
    )
    assert all(e.actor == "unknown" and e.resource.endswith("-\\xe9") for e in placeholders)
    assert len(events) == 60
    assert verified(engine) == (60, None)
