"""The audit trail's SQL repository on real SQLite and PostgreSQL databases: what goes in comes
back (and still verifies), queries, streaming, pruning, checkpoints, and one unbroken chain
from many writers at once."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, String, update

from adapters.db import audit_repository
from adapters.db.audit_appender import PostgresChainAppender
from adapters.db.chain_segments import ProcessChainSegments
from adapters.db.engine import create_engine_from_url
from adapters.db.tables import audit_events
from adapters.db.uow import SqlUnitOfWork
from adapters.group_commit import GroupCommit
from core.audit_chain import (
    GENESIS,
    AuditChain,
    canonical_content,
    chain_segments,
    chained,
    verify_chain,
    verify_links,
)
from core.audit_service import AuditService, Verification
from core.domain.audit import AuditEvent, AuditFilter, BrokenLink, ChainSegment
from core.domain.audit_bounds import TEXT_LIMITS, VERSION_MAX, VERSION_MIN
from core.domain.errors import AuditEventRefused, AuditUnavailable
from core.domain.values import Principal
from tests.fakes import CHECKPOINT_KEY, FixedClock, make_audit_trail
from tests.support.postgres import free_port

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
ROOT = Principal("root", "root", is_root=True)


def event(number: int = 1, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "time": NOW + timedelta(minutes=number),
        "actor": "user:alice",
        "actor_type": "user",
        "action": "secret.read_value",
        "resource": f"secret:{number}",
        "outcome": "success",
        **fields,
    }
    return AuditEvent(**values)


def append(engine: Engine, chain: AuditChain, *events: AuditEvent) -> list[AuditEvent]:
    with SqlUnitOfWork(engine) as uow:
        linked = chain.append(uow, list(events))
        uow.commit()
    return linked


def stored(engine: Engine, from_seq: int = 1, to_seq: int | None = None) -> list[AuditEvent]:
    with SqlUnitOfWork(engine) as uow:
        return list(uow.audit.events(from_seq, to_seq))


def verified(engine: Engine) -> tuple[int, Any]:
    with SqlUnitOfWork(engine) as uow:
        return verify_chain(uow.audit.events(), uow.audit.checkpoints(), CHECKPOINT_KEY)


@pytest.fixture
def chain() -> AuditChain:
    return AuditChain(CHECKPOINT_KEY, checkpoint_every=3)


def test_a_fresh_database_has_an_empty_chain(engine: Engine) -> None:
    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.head() == (0, GENESIS)
        assert uow.audit.lock_head() == (0, GENESIS)
        assert (uow.audit.first_seq(), uow.audit.checkpoints()) == (None, [])
        assert list(uow.audit.events()) == []


def test_events_come_back_as_they_went_in_and_still_verify(
    engine: Engine, chain: AuditChain
) -> None:
    full = event(
        time=datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        request_id="req-" + "r" * 60,
        source_ip="2001:db8::1",
        user_agent="secretctl/1.0 (ünïcödé ✓)",
        scope="project/p-42",
        scope_path="/1/2/3/4/",
        version=7,
        reason="forbidden",
        details={
            "value_hmac": "hmac-sha256:" + "a" * 64,
            "changed": ["description", "tags"],
            "nested": {"ok": True, "none": None, "count": 3},
            "text": 'naïve ✓ "quoted" \\ backslash',
        },
    )
    bare = event(2)  # every optional field empty

    linked = append(engine, chain, full, bare)

    assert stored(engine) == linked
    [back, _] = stored(engine)
    assert back.time == full.time and back.time.tzinfo is not None
    assert back.content() == full.content()
    assert verified(engine) == (2, None)
    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.head() == (2, linked[-1].hash)


def test_the_longest_values_an_event_holds_fit_its_columns(
    engine: Engine, chain: AuditChain
) -> None:
    longest = event(
        actor="service:" + "a" * 128,
        action="service_account.create",
        # a lookup by path: secret:<scope>/<name>@<environment>, each at its longest
        resource=f"secret:organization/{'o' * 128}/{'K' * 255}@{'e' * 64}",
        scope=f"organization/{'o' * 128}",
        request_id="r" * 64,
        source_ip="f" * 64,
        user_agent="u" * 512,  # what the web layer keeps of the header
        reason="secret_not_yet_valid",
    )

    linked = append(engine, chain, longest)

    assert stored(engine) == linked


def test_a_time_in_another_zone_comes_back_in_utc(engine: Engine, chain: AuditChain) -> None:
    paris = timezone(timedelta(hours=1))

    [linked] = append(engine, chain, event(time=NOW.astimezone(paris)))

    [back] = stored(engine)
    assert back.time == linked.time and back.time.utcoffset() == timedelta(0)


def test_appends_continue_the_chain_and_sign_checkpoints(engine: Engine, chain: AuditChain) -> None:
    for number in range(1, 8):
        append(engine, chain, event(number))

    events = stored(engine)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    with SqlUnitOfWork(engine) as uow:
        checkpoints = uow.audit.checkpoints()
    assert [(c.seq, c.hash, c.created_at) for c in checkpoints] == [
        (3, events[2].hash, events[2].time),
        (6, events[5].hash, events[5].time),
    ]
    assert checkpoints == [chain.checkpoint(c.seq, c.hash, c.created_at) for c in checkpoints]
    assert verified(engine) == (7, None)


def test_an_append_that_is_rolled_back_leaves_nothing(engine: Engine, chain: AuditChain) -> None:
    append(engine, chain, event(1))

    with SqlUnitOfWork(engine) as uow:
        chain.append(uow, [event(2), event(3)])  # with a checkpoint; then no commit

    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.head() == (1, stored(engine)[0].hash)
        assert uow.audit.checkpoints() == []
    assert [e.seq for e in append(engine, chain, event(2))] == [2]


def test_a_row_that_cannot_be_stored_makes_the_audit_trail_unavailable(
    engine: Engine, chain: AuditChain
) -> None:
    [first] = append(engine, chain, event(1))

    with SqlUnitOfWork(engine) as uow, pytest.raises(AuditUnavailable) as caught:
        uow.audit.insert([first])  # its seq is taken

    assert "IntegrityError" in caught.value.message
    assert "secret:1" not in caught.value.message  # the error names no row content


def test_the_bounds_of_an_event_are_its_columns() -> None:
    lengths = {
        column.name: column.type.length
        for column in audit_events.c
        if isinstance(column.type, String) and column.name not in ("prev_hash", "hash")
    }
    assert lengths == dict(TEXT_LIMITS)
    assert type(audit_events.c.version.type) is Integer  # 32 bits on PostgreSQL
    assert (VERSION_MIN, VERSION_MAX) == (-(2**31), 2**31 - 1)


UNSTORABLE = {
    "a version past 64 bits": {"version": 2**70},
    "a lone surrogate": {"resource": "secret:\ud800"},
    "no actor": {"actor": None},
}


@pytest.mark.parametrize("fields", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_a_row_whose_data_the_database_refuses_is_an_event_refused(
    engine: Engine, chain: AuditChain, fields: dict[str, Any]
) -> None:
    """Not the trail being down: the group commit then writes the others without it."""
    [linked] = chained([event(1, **fields)], 0, GENESIS)  # not bounded: as it came

    with SqlUnitOfWork(engine) as uow, pytest.raises(AuditEventRefused):
        uow.audit.append([linked])


@pytest.mark.postgres
@pytest.mark.parametrize(
    "fields", [{"version": 2**31}, {"resource": "x\x00"}, {"reason": "r" * 256}]
)
def test_what_only_postgresql_refuses_is_an_event_refused_too(
    postgres_engine: Engine, fields: dict[str, Any]
) -> None:
    [linked] = chained([event(1, **fields)], 0, GENESIS)
    with SqlUnitOfWork(postgres_engine) as uow, pytest.raises(AuditEventRefused):
        uow.audit.append([linked])
    appender = PostgresChainAppender(postgres_engine)
    with pytest.raises(AuditEventRefused):
        appender.append_committed([canonical_content(linked)], [None], 1000)
    appender.append_committed([canonical_content(event(2))], [None], 1000)  # still up
    assert [e.resource for e in stored(postgres_engine)] == ["secret:2"]


# -- queries --------------------------------------------------------------------------------


@pytest.fixture
def trail_of_six(engine: Engine, chain: AuditChain) -> list[AuditEvent]:
    return append(
        engine,
        chain,
        event(1, scope_path="/1/2/3/4/"),
        event(2, actor="user:bob", outcome="denied", scope_path="/1/2/3/4/"),
        event(3, action="secret.write_value", resource="secret:t", scope_path="/1/2/3/"),
        event(4, actor="user:carol", outcome="not_found", scope_path="/1/2/35/"),
        event(5, resource="secret:p", scope_path="/1/2/"),
        event(6, action="scope.list", resource="scopes"),
    )


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({}, [6, 5, 4, 3, 2, 1]),
        ({"actor": "user:alice"}, [6, 5, 3, 1]),
        ({"resource": "secret:1"}, [1]),
        ({"action": "secret.write_value"}, [3]),
        ({"outcome": "denied"}, [2]),
        ({"scope_path": "/1/2/3/"}, [3, 2, 1]),  # a subtree: not /1/2/35/, nor no scope
        ({"scope_path": "/1/2/"}, [5, 4, 3, 2, 1]),
        ({"since": NOW + timedelta(minutes=3)}, [6, 5, 4, 3]),
        ({"until": NOW + timedelta(minutes=3)}, [2, 1]),
        ({"before_seq": 4}, [3, 2, 1]),
        ({"actor": "user:alice", "scope_path": "/1/2/3/", "before_seq": 3}, [1]),
    ],
)
@pytest.mark.usefixtures("trail_of_six")
def test_search_filters_newest_first(
    engine: Engine, criteria: dict[str, Any], expected: list[int]
) -> None:
    with SqlUnitOfWork(engine) as uow:
        found = uow.audit.search(AuditFilter(**criteria), limit=100)
        assert [e.seq for e in found] == expected
        assert [e.seq for e in uow.audit.search(AuditFilter(**criteria), limit=2)] == expected[:2]


@pytest.mark.usefixtures("trail_of_six")
def test_which_resources_were_acted_on(engine: Engine) -> None:
    with SqlUnitOfWork(engine) as uow:
        found = uow.audit.resources_with(
            ["secret:1", "secret:2", "secret:p", "secret:none"],
            "secret.read_value",
            "success",
            NOW + timedelta(minutes=2),
        )
    assert found == {"secret:p"}  # 1 is too old, 2 was denied


def test_events_stream_in_chain_order_in_batches(
    engine: Engine, chain: AuditChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_repository, "STREAM_BATCH", 3)
    linked = append(engine, chain, *(event(n) for n in range(1, 12)))

    with SqlUnitOfWork(engine) as uow:
        assert list(uow.audit.events()) == linked
        assert [e.seq for e in uow.audit.events(4, 9)] == [4, 5, 6, 7, 8, 9]
        assert [e.seq for e in uow.audit.events(10)] == [10, 11]
        assert list(uow.audit.events(12)) == []
        # another query while a stream is open, in the same transaction
        stream = uow.audit.events()
        next(stream)
        assert uow.audit.head() == (11, linked[-1].hash)
        assert [e.seq for e in stream] == list(range(2, 12))


def test_prune_deletes_up_to_a_seq_and_keeps_the_checkpoints(
    engine: Engine, chain: AuditChain
) -> None:
    linked = append(engine, chain, *(event(n) for n in range(1, 8)))

    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.prune(3) == 3
        assert uow.audit.prune(3) == 0
        uow.commit()

    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.first_seq() == 4
        assert [c.seq for c in uow.audit.checkpoints()] == [3, 6]  # pruning keeps checkpoints
        assert uow.audit.head() == (7, linked[-1].hash)
    assert stored(engine) == linked[3:]


def test_a_pruned_chain_verifies_from_its_anchor(engine: Engine) -> None:
    clock = FixedClock(NOW)
    trail = make_audit_trail(functools.partial(SqlUnitOfWork, engine), clock, checkpoint_every=2)
    service = AuditService(functools.partial(SqlUnitOfWork, engine), trail, CHECKPOINT_KEY, clock)
    for number in range(1, 6):
        append(engine, trail.chain, event(number, time=NOW + timedelta(hours=number)))

    assert service.prune(ROOT, NOW + timedelta(hours=4, minutes=30)) == 4

    result = service.verify(ROOT)
    assert (result.ok, result.first_seq, result.last_seq) == (True, 5, 6)
    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.first_seq() == 5


# -- many writers ---------------------------------------------------------------------------


def run_in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    failures: list[BaseException] = []

    def guarded(number: int) -> None:
        try:
            work(number)
        except BaseException as error:  # reported by the test, not lost in a thread
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_concurrent_appends_make_one_unbroken_chain(engine: Engine) -> None:
    writers, appends = 8, 50
    chain = AuditChain(CHECKPOINT_KEY, checkpoint_every=25)

    def write(writer: int) -> None:
        for number in range(appends):
            append(engine, chain, event(number, actor=f"user:writer-{writer}"))

    assert run_in_threads(writers, write) == []

    events = stored(engine)
    assert [e.seq for e in events] == list(range(1, writers * appends + 1))
    assert verified(engine) == (writers * appends, None)
    with SqlUnitOfWork(engine) as uow:
        assert uow.audit.head() == (writers * appends, events[-1].hash)
        assert [c.seq for c in uow.audit.checkpoints()] == list(range(25, 401, 25))
    for writer in range(writers):  # each writer's events, in the order it wrote them
        own = [e for e in events if e.actor == f"user:writer-{writer}"]
        assert [e.resource for e in own] == [f"secret:{n}" for n in range(appends)]


def test_verification_while_others_append_reports_no_false_break(engine: Engine) -> None:
    clock = FixedClock(NOW)
    trail = make_audit_trail(functools.partial(SqlUnitOfWork, engine), clock, checkpoint_every=100)
    service = AuditService(functools.partial(SqlUnitOfWork, engine), trail, CHECKPOINT_KEY, clock)
    for start in range(0, 3000, 500):
        append(engine, trail.chain, *(event(n) for n in range(start, start + 500)))
    done = threading.Event()

    def keep_appending(_: int) -> None:
        while not done.is_set():
            append(engine, trail.chain, replace(event(0), actor="user:busy"))

    def verify_meanwhile(_: int) -> None:
        try:
            results = [service.verify(ROOT) for _ in range(5)]
        finally:
            done.set()
        assert [result.broken for result in results] == [None] * 5

    def work(number: int) -> None:
        (verify_meanwhile if number == 0 else keep_appending)(number)

    assert run_in_threads(3, work) == []
    assert verified(engine)[1] is None


# -- PostgreSQL's one-round-trip append (migration 0007) --------------------------------------


def appended_by(engine: Engine, every: int) -> GroupCommit:
    return GroupCommit(
        functools.partial(SqlUnitOfWork, engine),
        AuditChain(CHECKPOINT_KEY, every),
        None,
        PostgresChainAppender(engine),
    )


@pytest.mark.postgres
def test_the_server_side_append_stores_the_chain_python_computes(postgres_engine: Engine) -> None:
    group = appended_by(postgres_engine, 1000)
    tricky = event(
        1,
        details={"note": 'quotes " \\ and a\nnewline', "unicode": "café ☕ 秘密", "n": [1, None]},
        user_agent="agent/2.0 (é)",
        source_ip="2001:db8::1",
        time=datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        version=7,
        reason=None,
    )
    linked = group.append([tricky, event(2)]) + group.append([event(3)])
    events = stored(postgres_engine)
    assert [(e.seq, e.prev_hash, e.hash) for e in events] == [
        (e.seq, e.prev_hash, e.hash) for e in linked
    ]
    assert events[0].content() == tricky.content()
    assert verified(postgres_engine) == (3, None)
    with SqlUnitOfWork(postgres_engine) as uow:
        assert uow.audit.head() == (3, linked[-1].hash)


@pytest.mark.postgres
def test_the_server_side_append_signs_a_checkpoint_in_the_same_transaction(
    postgres_engine: Engine,
) -> None:
    appender = PostgresChainAppender(postgres_engine)
    contents = [canonical_content(event(n)) for n in range(3)]
    refused = appender.append_committed(contents, [None, None, None], 3)
    assert (refused.written, refused.head_seq) == (False, 0)
    assert stored(postgres_engine) == []

    def sign_then_fail(appended: Any) -> list[Any]:
        raise OSError("the key is gone")

    with pytest.raises(AuditUnavailable):
        appender.append_signed(contents, [None, None, None], sign_then_fail)
    assert stored(postgres_engine) == []  # rolled back, the chain's lock released
    group = appended_by(postgres_engine, 3)
    for n in range(7):
        group.append([event(n)])
    with SqlUnitOfWork(postgres_engine) as uow:
        assert [c.seq for c in uow.audit.checkpoints()] == [3, 6]
        assert verify_chain(
            uow.audit.events(), uow.audit.checkpoints(), CHECKPOINT_KEY, checkpoint_every=3
        ) == (7, None)


@pytest.mark.postgres
def test_the_server_side_append_leaves_out_reads_of_another_generation(
    postgres_engine: Engine,
) -> None:
    with SqlUnitOfWork(postgres_engine, read_only=True) as uow:
        now = uow.audit.generation()
    appender = PostgresChainAppender(postgres_engine)
    contents = [canonical_content(event(n)) for n in range(3)]
    appended = appender.append_committed(contents, [now, now + 1, None], 1000)
    assert (appended.written, appended.generation) == (True, now)
    assert [e.resource for e in stored(postgres_engine)] == ["secret:0", "secret:2"]
    assert verified(postgres_engine) == (2, None)


@pytest.mark.postgres
def test_the_server_side_append_refuses_what_is_not_one_line_per_event(
    postgres_engine: Engine,
) -> None:
    with pytest.raises(ValueError, match="newline"):
        PostgresChainAppender(postgres_engine).append_committed(["{}\n{}"], [None], 1000)
    assert stored(postgres_engine) == []


@pytest.mark.postgres
def test_two_processes_groups_and_transactions_make_one_unbroken_chain(
    postgres_engine: Engine,
) -> None:
    """Two group commits (two worker processes) and appends in transactions (writes), all at
    once: one chain, every event once, every checkpoint signed."""
    groups = [appended_by(postgres_engine, 10), appended_by(postgres_engine, 10)]
    chain = AuditChain(CHECKPOINT_KEY, 10)

    def work(number: int) -> None:
        for n in range(30):
            if number == 0:
                append(postgres_engine, chain, event(n, actor="user:writer"))
            else:
                groups[number % 2].append([event(n, actor=f"service:{number}")])

    assert run_in_threads(9, work) == []
    with SqlUnitOfWork(postgres_engine) as uow:
        checked = verify_chain(
            uow.audit.events(), uow.audit.checkpoints(), CHECKPOINT_KEY, checkpoint_every=10
        )
        assert [c.seq for c in uow.audit.checkpoints()] == list(range(10, 271, 10))
    assert checked == (270, None)
    assert sum(group.events for group in groups) == 240


@pytest.mark.postgres
def test_the_server_side_append_on_a_database_that_is_down_is_audit_unavailable(
    postgres_engine: Engine,
) -> None:
    down = create_engine_from_url(
        postgres_engine.url.set(port=free_port()).render_as_string(hide_password=False)
    )
    try:
        with pytest.raises(AuditUnavailable, match="cannot be written") as caught:
            PostgresChainAppender(down).append_committed(["{}"], [None], 1000)
        assert not isinstance(caught.value, AuditEventRefused)  # no retry: it fails closed
    finally:
        down.dispose()


def test_chain_links_give_what_the_hash_covers_details_included(
    engine: Engine, chain: AuditChain
) -> None:
    """Verification reads links, not events: their content must be each event's `content()`,
    whether its details are empty, nested, unicode or written by the database's append."""
    varied = [
        event(1),
        event(2, details={"note": 'quotes " \\ and a\nnewline', "n": [1, None, True]}),
        event(3, details={"unicode": "café ☕", "nested": {"b": 2, "a": {}}}),
        event(4, details={}),
    ]
    linked = append(engine, chain, *varied)
    if engine.dialect.name == "postgresql":
        linked += appended_by(engine, 3).append([event(5, details={"k": "v"}), event(6)])
    with SqlUnitOfWork(engine) as uow:
        links = list(uow.audit.chain_links())
        assert [link.canonical for link in links] == [canonical_content(e) for e in linked]
        assert [json.loads(link.canonical) for link in links] == [e.content() for e in linked]
        assert verify_links(links, uow.audit.checkpoints(), CHECKPOINT_KEY) == (len(linked), None)


# -- verification in segments, in processes -------------------------------------------------


def test_a_chain_is_verified_in_segments_in_other_processes(
    engine: Engine, database_url: str
) -> None:
    """The processes read the database on their own connections: an intact chain verifies in
    segments, and a broken one gets the report one pass in order gives."""
    clock = FixedClock(NOW)
    factory = functools.partial(SqlUnitOfWork, engine)
    trail = make_audit_trail(factory, clock, checkpoint_every=10)
    append(engine, trail.chain, *(event(number) for number in range(1, 61)))
    processes = ProcessChainSegments(database_url, 2)
    service = AuditService(factory, trail, CHECKPOINT_KEY, clock, processes, parallel_from=20)
    in_one_pass = AuditService(factory, trail, CHECKPOINT_KEY, clock)
    with SqlUnitOfWork(engine) as uow:
        checkpoints = tuple(uow.audit.checkpoints())

    cut = chain_segments(ChainSegment(1, 60, GENESIS, checkpoints), 2, CHECKPOINT_KEY)
    assert cut is not None and [(s.first, s.last) for s in cut] == [(1, 30), (31, 60)]
    assert processes.verify(cut, CHECKPOINT_KEY, 10) == [(30, None), (30, None)]
    assert service.verify(ROOT, 1, 60) == Verification(60, 1, 60, None)

    with engine.begin() as connection:
        connection.execute(
            update(audit_events).where(audit_events.c.seq == 45).values(actor="user:mallory")
        )
    assert processes.verify(cut, CHECKPOINT_KEY, 10) == [
        (30, None),
        (14, BrokenLink(45, "its content was altered")),
    ]
    assert service.verify(ROOT, 1, 60) == in_one_pass.verify(ROOT, 1, 60)
    assert service.verify(ROOT, 1, 60).broken == BrokenLink(45, "its content was altered")


def test_a_database_in_memory_is_verified_in_one_process() -> None:
    assert ProcessChainSegments("sqlite://", 4).processes == 1
    assert ProcessChainSegments("sqlite:///:memory:", 4).processes == 1
    assert ProcessChainSegments("sqlite:////var/lib/secrets.db", 4).processes == 4


def test_segments_whose_processes_fail_are_left_to_one_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database the processes cannot reach: no finding (the service then verifies in one
    pass, which reports the database's error), a warning without the URL."""
    url = f"postgresql://verifier:pw-not-logged@127.0.0.1:{free_port()}/none"
    segments = [ChainSegment(1, 10, GENESIS, ()), ChainSegment(11, 20, "f" * 64, ())]

    assert ProcessChainSegments(url, 2).verify(segments, CHECKPOINT_KEY, 10) is None
    assert "verifying in one" in caplog.text
    assert "pw-not-logged" not in caplog.text and CHECKPOINT_KEY.hex() not in caplog.text
