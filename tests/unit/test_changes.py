"""The change stream's core (`core.changes`): who sees which event (checked with the bindings
of the moment of delivery), the filters, the cursors, and the one poller per process that does
not move past a transaction still committing. Fakes only."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.changes import ChangeHub, ChangeStream, StreamFilter, parse_cursor, visible
from core.domain.access import Role
from core.domain.changes import ChangeRecord
from core.domain.errors import InvalidInput, NotFound
from core.domain.values import Principal, ScopeRef, ScopeType
from core.events import ChangeFeed
from ports.changes import ChangeSource
from tests.fakes import FakeDatabase, FakeUnitOfWork, FakeUnitOfWorkFactory, FixedClock

ALICE = Principal("user:alice", "user")
BOB = Principal("user:bob", "user")
AT = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
P1 = ScopeRef(ScopeType.PROJECT, "p-1")
P2 = ScopeRef(ScopeType.PROJECT, "p-2")


class ListSource(ChangeSource):
    """A change log in a list: what the database holds, in cursor order."""

    def __init__(self) -> None:
        self.records: list[ChangeRecord] = []
        self.reads = 0

    def head(self) -> int:
        return self.records[-1].id if self.records else 0

    def after(self, cursor: int, limit: int, upto: int | None = None) -> list[ChangeRecord]:
        self.reads += 1
        rows = [r for r in self.records if r.id > cursor and (upto is None or r.id <= upto)]
        return sorted(rows, key=lambda r: r.id)[:limit]


@pytest.fixture
def database() -> FakeDatabase:
    database = FakeDatabase()
    database.add_scope(P1, ScopeRef.global_scope())
    database.add_scope(P2, ScopeRef.global_scope())
    return database


def path_of(database: FakeDatabase, scope: ScopeRef) -> str:
    return database.tables.scope_path_of(scope)


def record(
    database: FakeDatabase, cursor: int, scope: ScopeRef, name: str = "DB_URL"
) -> ChangeRecord:
    return ChangeRecord(
        id=cursor,
        type="secret.rotated",
        secret_id=uuid.uuid4(),
        time=AT,
        scope=scope,
        scope_path=path_of(database, scope),
        name=name,
        environment="production",
        version=2,
    )


def test_a_caller_sees_only_events_of_secrets_it_may_list(database: FakeDatabase) -> None:
    database.grant("user:alice", Role.VIEWER, P1)
    mine, theirs = record(database, 1, P1), record(database, 2, P2)
    with FakeUnitOfWork(database, read_only=True) as uow:
        assert visible(ALICE, [mine, theirs], uow, AT) == [mine]
        assert visible(BOB, [mine, theirs], uow, AT) == []


def test_a_binding_narrowed_to_a_name_glob_shows_only_those_names(database: FakeDatabase) -> None:
    database.grant("user:alice", Role.VIEWER, P1, name_pattern="DB_*")
    db, api = record(database, 1, P1, "DB_URL"), record(database, 2, P1, "API_KEY")
    with FakeUnitOfWork(database, read_only=True) as uow:
        assert visible(ALICE, [db, api], uow, AT) == [db]


def test_an_event_whose_place_is_unknown_is_shown_to_nobody_but_root(
    database: FakeDatabase,
) -> None:
    database.grant("user:alice", Role.ADMIN)
    orphan = ChangeRecord(type="secret.purged", secret_id=uuid.uuid4(), time=AT, id=1)
    with FakeUnitOfWork(database, read_only=True) as uow:
        assert visible(ALICE, [orphan], uow, AT) == []


def test_the_bindings_are_those_of_the_moment_of_delivery(database: FakeDatabase) -> None:
    binding = database.grant("user:alice", Role.VIEWER, P1)
    source = ListSource()
    hub = ChangeHub(source, poll_seconds=3600)
    stream = ChangeStream(hub, FakeUnitOfWorkFactory(database), FixedClock(AT))
    position = stream.start(ALICE, "now")
    source.records.append(record(database, 1, P1))
    hub.poll_once()
    shown, position = stream.next_batch(ALICE, position, StreamFilter(), 0)
    assert [r.id for r in shown] == [1]
    database.tables.delete_binding(binding.id)  # removed mid-stream
    source.records.append(record(database, 2, P1))
    hub.poll_once()
    shown, position = stream.next_batch(ALICE, position, StreamFilter(), 0)
    assert shown == [] and position == 2  # moved on past what it may not see
    hub.stop()


def test_an_expired_binding_stops_events(database: FakeDatabase) -> None:
    database.grant("user:alice", Role.VIEWER, P1, expires_at=AT + timedelta(minutes=1))
    event = record(database, 1, P1)
    with FakeUnitOfWork(database, read_only=True) as uow:
        assert visible(ALICE, [event], uow, AT) == [event]
        assert visible(ALICE, [event], uow, AT + timedelta(minutes=2)) == []


def test_filters_by_scope_subtree_and_by_secret(database: FakeDatabase) -> None:
    one, two = record(database, 1, P1), record(database, 2, P2)
    assert StreamFilter(scope_path=path_of(database, P1)).matches(one)
    assert not StreamFilter(scope_path=path_of(database, P1)).matches(two)
    assert StreamFilter(secret_id=two.secret_id).matches(two)
    assert not StreamFilter(secret_id=two.secret_id).matches(one)
    assert StreamFilter(scope_path=path_of(database, ScopeRef.global_scope())).matches(two)


def test_a_scope_filter_the_caller_cannot_see_is_not_found(database: FakeDatabase) -> None:
    database.grant("user:alice", Role.VIEWER, P1)
    stream = ChangeStream(
        ChangeHub(ListSource(), poll_seconds=3600),
        FakeUnitOfWorkFactory(database),
        FixedClock(AT),
    )
    assert stream.filter_for(ALICE, P1, None).scope_path == path_of(database, P1)
    with pytest.raises(NotFound):
        stream.filter_for(ALICE, P2, None)
    with pytest.raises(NotFound):
        stream.filter_for(ALICE, ScopeRef(ScopeType.PROJECT, "nowhere"), None)
    # a binding below the asked scope: the caller may watch the subtree it sees part of
    assert stream.filter_for(ALICE, ScopeRef.global_scope(), None).scope_path == "/1/"


def test_cursors() -> None:
    assert parse_cursor(None, 7) == 7
    assert parse_cursor("now", 7) == 7
    assert parse_cursor("3", 7) == 3
    for bad in ("-1", "x", "1.5", "9" * 19):
        with pytest.raises(InvalidInput):
            parse_cursor(bad, 7)


def test_the_hub_waits_at_a_hole_then_moves_past_it(database: FakeDatabase) -> None:
    now = [0.0]
    source = ListSource()
    hub = ChangeHub(source, poll_seconds=3600, gap_wait=2.0, monotonic=lambda: now[0])
    assert hub.cursor == 0
    source.records += [record(database, 1, P1), record(database, 3, P1)]  # 2 still committing
    assert hub.poll_once() == 1 and hub.cursor == 1
    now[0] = 1.0
    source.records.append(record(database, 2, P1))  # it commits: nothing skipped
    assert hub.poll_once() == 2 and hub.cursor == 3
    source.records.append(record(database, 5, P1))  # 4 rolled back: a hole for good
    assert hub.poll_once() == 0
    now[0] = 4.0
    assert hub.poll_once() == 1 and hub.cursor == 5
    hub.stop()


def test_a_subscriber_behind_the_window_catches_up_from_the_log(database: FakeDatabase) -> None:
    database.grant("user:alice", Role.VIEWER)
    source = ListSource()
    hub = ChangeHub(source, poll_seconds=3600, window=2)
    stream = ChangeStream(hub, FakeUnitOfWorkFactory(database), FixedClock(AT))
    assert hub.cursor == 0
    source.records += [record(database, n, P1) for n in range(1, 6)]
    hub.poll_once()
    shown, position = stream.next_batch(ALICE, 0, StreamFilter(), 0)
    assert [r.id for r in shown] == [1, 2, 3, 4, 5] and position == 5
    shown, _ = stream.next_batch(ALICE, 3, StreamFilter(), 0)  # in the window
    assert [r.id for r in shown] == [4, 5]
    hub.stop()


def test_one_poller_wakes_every_subscriber(database: FakeDatabase) -> None:
    database.grant("user:alice", Role.VIEWER)
    source = ListSource()
    hub = ChangeHub(source, poll_seconds=0.05)
    stream = ChangeStream(hub, FakeUnitOfWorkFactory(database), FixedClock(AT))
    start = stream.start(ALICE, None)
    got: list[list[int]] = []

    def subscriber() -> None:
        shown, _ = stream.next_batch(ALICE, start, StreamFilter(), 10)
        got.append([r.id for r in shown])

    threads = [threading.Thread(target=subscriber) for _ in range(20)]
    for thread in threads:
        thread.start()
    reads_before = source.reads
    source.records.append(record(database, 1, P1))
    for thread in threads:
        thread.join(10)
    assert got == [[1]] * 20
    # the subscribers read nothing themselves: only the poller's reads (a few per 50 ms)
    assert source.reads - reads_before < 20
    hub.stop()


def test_every_change_is_logged_for_the_stream_without_any_webhook() -> None:
    database = FakeDatabase()
    database.add_scope(P1, ScopeRef.global_scope())
    feed = ChangeFeed(targets=())
    secret_id = uuid.uuid4()
    with FakeUnitOfWork(database) as uow:
        feed.record(uow, "secret.purged", secret_id, at=AT, actor="user:a", scope="project/p-1")
        uow.commit()
    [logged] = database.tables.changes
    assert logged.id == 1 and logged.scope == P1 and logged.scope_path == path_of(database, P1)
    assert database.tables.outbox == {}  # no subscriber: no outbox message
    payload = logged.payload()
    assert payload["secret"] == {
        "id": str(secret_id),
        "scope": {"type": "project", "id": "p-1"},
        "name": None,
        "environment": None,
        "reference": None,
    }


def test_a_hub_without_subscribers_stops_polling_and_starts_again_at_the_head(
    database: FakeDatabase,
) -> None:
    now = [0.0]
    source = ListSource()
    hub = ChangeHub(source, poll_seconds=3600, monotonic=lambda: now[0], idle_after=10)
    assert hub.cursor == 0
    source.records.append(record(database, 1, P1))
    hub.poll_once()
    now[0] = 11.0
    assert hub._idle()  # nobody asked for 10 s: nothing more is read
    source.records += [record(database, 2, P1), record(database, 3, P1)]
    assert hub.cursor == 3  # `now` for the next subscriber is the head, not where it stopped
    assert not hub._idle()
    hub.stop()
