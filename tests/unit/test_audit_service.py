"""AuditService on the fakes: who may search, export, verify and prune the audit trail, what a
scope's auditors see of it, and what verification reports once rows are changed or pruned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.audit import AuditTrail
from core.audit_chain import GENESIS, event_hash
from core.audit_service import MAX_PAGE, AuditService, Verification
from core.domain.access import Role
from core.domain.audit import AuditEvent, AuditFilter, BrokenLink, ChainSegment
from core.domain.errors import Forbidden, InvalidInput, NotFound
from core.domain.values import Principal, ScopeRef, ScopeType
from tests.fakes import (
    CHECKPOINT_KEY,
    FakeChainSegments,
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    make_audit_trail,
    recorded,
)

NOW = datetime(2024, 8, 1, 0, 0, tzinfo=UTC)
GLOBAL = ScopeRef.global_scope()
ORGANIZATION = ScopeRef(ScopeType.ORGANIZATION, "acme")  # /1/2/
TEAM = ScopeRef(ScopeType.TEAM, "t-1")  # /1/2/3/
PROJECT = ScopeRef(ScopeType.PROJECT, "p-42")  # /1/2/3/4/
SIBLING = ScopeRef(ScopeType.TEAM, "t-2")  # /1/2/5/

AUDITOR = Principal("user:auditor", "user")  # auditor of the global scope
ADMIN = Principal("user:admin", "user")  # admin of the global scope
TEAM_AUDITOR = Principal("user:team-auditor", "user")
ORGANIZATION_ADMIN = Principal("user:org-admin", "user")
READER = Principal("user:reader", "user")  # reads every value, but not the audit trail
OUTSIDER = Principal("user:outsider", "user")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    database = FakeDatabase()
    database.add_scope(ORGANIZATION, GLOBAL)
    database.add_scope(TEAM, ORGANIZATION)
    database.add_scope(PROJECT, TEAM)
    database.add_scope(SIBLING, ORGANIZATION)
    database.grant(AUDITOR.id, Role.AUDITOR)
    database.grant(ADMIN.id, Role.ADMIN)
    database.grant(TEAM_AUDITOR.id, Role.AUDITOR, TEAM)
    database.grant(ORGANIZATION_ADMIN.id, Role.ADMIN, ORGANIZATION)
    database.grant(READER.id, Role.READER)
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def trail(db: FakeUnitOfWorkFactory, clock: FixedClock) -> AuditTrail:
    """Checkpoints every 2 events, so that there are some to prune to and verify against."""
    return make_audit_trail(db, clock, checkpoint_every=2)


@pytest.fixture
def service(db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock) -> AuditService:
    return AuditService(db, trail, CHECKPOINT_KEY, clock)


def record(
    db: FakeUnitOfWorkFactory,
    trail: AuditTrail,
    clock: FixedClock,
    actor: str,
    action: str,
    resource: str,
    outcome: str = "success",
    scope: ScopeRef | None = None,
) -> AuditEvent:
    """Append one event, an hour after the previous one."""
    path = db.database.tables.scopes[scope].path if scope else None
    event = AuditEvent(
        time=clock.advance(timedelta(hours=1)),
        actor=actor,
        actor_type="user",
        action=action,
        resource=resource,
        outcome=outcome,
        scope=str(scope) if scope else None,
        scope_path=path,
    )
    with db() as uow:
        [linked] = trail.chain.append(uow, [event])
        uow.commit()
    return linked


@pytest.fixture
def history(db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock) -> list[AuditEvent]:
    """Six events, seq 1 to 6, one an hour, in scopes across the hierarchy."""
    return [
        record(db, trail, clock, "user:alice", "secret.read_value", "secret:p", scope=PROJECT),
        record(db, trail, clock, "user:bob", "secret.read_value", "secret:p", "denied", PROJECT),
        record(db, trail, clock, "user:alice", "secret.write_value", "secret:t", scope=TEAM),
        record(
            db, trail, clock, "user:carol", "secret.read_value", "secret:s", "not_found", SIBLING
        ),
        record(
            db, trail, clock, "user:alice", "secret.read_metadata", "secret:o", scope=ORGANIZATION
        ),
        record(db, trail, clock, "user:alice", "scope.list", "scopes"),
    ]


def seqs(events: list[AuditEvent] | Iterator[AuditEvent]) -> list[int | None]:
    return [event.seq for event in events]


def search(
    service: AuditService,
    caller: Principal = AUDITOR,
    scope: ScopeRef | None = None,
    limit: int = 100,
    **criteria: object,
) -> list[int | None]:
    return seqs(service.search(caller, AuditFilter(**criteria), scope, limit))


# -- search ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("history")
def test_an_auditor_of_the_global_scope_searches_the_whole_trail_newest_first(
    service: AuditService,
) -> None:
    assert search(service) == [6, 5, 4, 3, 2, 1]
    assert search(service, ADMIN) == [6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"actor": "user:alice"}, [6, 5, 3, 1]),
        ({"resource": "secret:p"}, [2, 1]),
        ({"action": "secret.read_value"}, [4, 2, 1]),
        ({"outcome": "denied"}, [2]),
        ({"outcome": "not_found"}, [4]),
        ({"since": NOW + timedelta(hours=3)}, [6, 5, 4, 3]),
        ({"until": NOW + timedelta(hours=3)}, [2, 1]),
        ({"since": NOW + timedelta(hours=2), "until": NOW + timedelta(hours=5)}, [4, 3, 2]),
        ({"actor": "user:alice", "action": "secret.read_value"}, [1]),
        ({"actor": "user:mallory"}, []),
    ],
)
@pytest.mark.usefixtures("history")
def test_search_filters(
    service: AuditService, criteria: dict[str, object], expected: list[int]
) -> None:
    assert search(service, **criteria) == expected


@pytest.mark.usefixtures("history")
def test_an_auditor_of_a_scope_sees_its_subtree_only(service: AuditService) -> None:
    assert search(service, TEAM_AUDITOR, TEAM) == [3, 2, 1]
    assert search(service, TEAM_AUDITOR, PROJECT) == [2, 1]
    assert search(service, ORGANIZATION_ADMIN, ORGANIZATION) == [5, 4, 3, 2, 1]
    assert search(service, AUDITOR, SIBLING) == [4]
    # the query's own scope path is the one authorized, whatever the criteria said
    assert search(service, TEAM_AUDITOR, TEAM, scope_path="/1/") == [3, 2, 1]
    assert search(service, TEAM_AUDITOR, TEAM, actor="user:alice") == [3, 1]


@pytest.mark.usefixtures("history")
def test_searching_needs_the_audit_right_where_it_searches(service: AuditService) -> None:
    for actor, scope in [(TEAM_AUDITOR, None), (TEAM_AUDITOR, ORGANIZATION), (OUTSIDER, TEAM)]:
        with pytest.raises(NotFound):  # they cannot even see that scope
            search(service, actor, scope)
    for actor, scope in [(READER, None), (READER, TEAM)]:
        with pytest.raises(Forbidden):
            search(service, actor, scope)
    with pytest.raises(NotFound, match="team/t-404"):
        search(service, AUDITOR, ScopeRef(ScopeType.TEAM, "t-404"))


@pytest.mark.usefixtures("history")
def test_search_pages_with_a_cursor(service: AuditService) -> None:
    pages, cursor = [], None
    while True:
        page = search(service, limit=4, before_seq=cursor)
        pages.append(page)
        if len(page) < 4:
            break
        cursor = page[-1]

    assert pages == [[6, 5, 4, 3], [2, 1]]
    assert search(service, limit=2, before_seq=5) == [4, 3]
    assert search(service, limit=2, before_seq=1) == []
    assert search(service, TEAM_AUDITOR, TEAM, limit=2, before_seq=3) == [2, 1]


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1])
def test_search_refuses_a_bad_limit(service: AuditService, limit: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        search(service, limit=limit)
    assert caught.value.details == {"field": "limit"}


# -- export ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("history")
def test_an_export_is_recorded_then_streams_the_matching_events_oldest_first(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    exported = service.export(AUDITOR, AuditFilter(), None)

    export = db.database.audit_events()[-1]
    assert (export.seq, export.actor, export.action, export.resource, export.outcome) == (
        7,
        AUDITOR.id,
        "audit.export",
        "audit",
        "success",
    )
    assert isinstance(exported, Iterator)
    assert list(exported) == db.database.audit_events()
    assert seqs(service.export(AUDITOR, AuditFilter(actor="user:alice"), None)) == [1, 3, 5, 6]
    assert seqs(service.export(AUDITOR, AuditFilter(until=NOW + timedelta(hours=3)), None)) == [
        1,
        2,
    ]


@pytest.mark.usefixtures("history")
def test_an_export_of_a_scope_holds_its_subtree_only(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    assert seqs(service.export(TEAM_AUDITOR, AuditFilter(), TEAM)) == [1, 2, 3]
    assert seqs(service.export(TEAM_AUDITOR, AuditFilter(outcome="denied"), PROJECT)) == [2]
    assert [(e.actor, e.action, e.scope) for e in db.database.audit_events()[6:]] == [
        (TEAM_AUDITOR.id, "audit.export", "team/t-1"),
        (TEAM_AUDITOR.id, "audit.export", "project/p-42"),
    ]


@pytest.mark.usefixtures("history")
def test_a_refused_export_is_refused_at_once_and_recorded(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    with recorded(db) as events:
        with pytest.raises(Forbidden):
            service.export(READER, AuditFilter(), None)  # at the call, not once iterated
        with pytest.raises(NotFound):
            service.export(TEAM_AUDITOR, AuditFilter(), None)

    assert [(e.actor, e.action, e.outcome) for e in events] == [
        (READER.id, "audit.export", "denied"),
        (TEAM_AUDITOR.id, "audit.export", "not_found"),
    ]


# -- verify ---------------------------------------------------------------------------------


def test_an_empty_trail_verifies(service: AuditService) -> None:
    assert service.verify(AUDITOR) == Verification(0, None, None, None)


@pytest.mark.usefixtures("history")
def test_an_intact_trail_verifies_and_the_verification_is_recorded(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    result = service.verify(AUDITOR)

    assert result == Verification(checked=6, first_seq=1, last_seq=6, broken=None)
    assert result.ok
    verification = db.database.audit_events()[-1]
    assert (verification.action, verification.outcome, verification.details) == (
        "audit.verify",
        "success",
        {"ok": True, "checked": 6},
    )
    assert service.verify(AUDITOR).checked == 7  # the trail now holds that event too


@pytest.mark.usefixtures("history")
def test_a_range_is_verified_from_its_stored_predecessor(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.replace_audit_event(6, actor="user:mallory")

    assert service.verify(AUDITOR, 2, 4) == Verification(3, 2, 4, None)
    assert service.verify(AUDITOR, 1, 5).ok
    assert service.verify(AUDITOR, 3, 6) == Verification(
        3, 3, 5, BrokenLink(6, "its content was altered")
    )


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("from_seq", [7, 999_999_999, 2**70])
def test_a_range_past_the_head_has_nothing_to_verify(
    service: AuditService, db: FakeUnitOfWorkFactory, from_seq: int
) -> None:
    """Not "event 7 is missing": the chain is intact and the range holds nothing."""
    assert service.verify(AUDITOR, from_seq) == Verification(0, None, None, None)
    verification = db.database.audit_events()[-1]
    assert (verification.action, verification.details) == (
        "audit.verify",
        {"ok": True, "checked": 0},
    )
    assert service.verify(AUDITOR, from_seq + 1, from_seq + 5).ok


@pytest.mark.usefixtures("history")
def test_a_tail_cut_under_a_range_is_still_reported(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.tables.audit_head = (9, db.database.tables.audit_head[1])  # 7 to 9 are gone

    assert service.verify(AUDITOR, 8).broken == BrokenLink(7, "event 7 is missing")


@pytest.mark.usefixtures("history")
def test_an_edited_event_is_reported_and_the_failed_verification_recorded(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.replace_audit_event(3, outcome="success", actor="user:someone-else")

    result = service.verify(AUDITOR)

    assert result == Verification(2, 1, 2, BrokenLink(3, "its content was altered"))
    assert db.database.audit_events()[-1].details == {"ok": False, "checked": 2}


@pytest.mark.usefixtures("history")
def test_a_deleted_event_is_reported(service: AuditService, db: FakeUnitOfWorkFactory) -> None:
    del db.database.tables.audit_events[4]

    assert service.verify(AUDITOR).broken == BrokenLink(4, "event 4 is missing")


@pytest.mark.usefixtures("history")
def test_a_cut_tail_is_reported_from_the_head_row(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    for seq in (5, 6):  # past the last checkpoint but one: only the head row tells
        del db.database.tables.audit_events[seq]
    del db.database.tables.audit_checkpoints[6]

    assert service.verify(AUDITOR).broken == BrokenLink(5, "events 5 to 6 are missing")


@pytest.mark.usefixtures("history")
def test_a_trail_emptied_behind_the_services_back_is_reported(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    db.database.tables.audit_events.clear()

    assert service.verify(AUDITOR).broken == BrokenLink(1, "events 1 to 6 are missing")


def test_events_deleted_from_the_start_without_a_checkpoint_are_reported(
    service: AuditService, db: FakeUnitOfWorkFactory, clock: FixedClock
) -> None:
    trail = make_audit_trail(db, clock)  # no checkpoint before the 1000th event
    for _ in range(3):
        record(db, trail, clock, "user:alice", "scope.list", "scopes")
    del db.database.tables.audit_events[1]

    assert service.verify(AUDITOR).broken == BrokenLink(
        2, "the events before it are gone without a signed checkpoint"
    )


@pytest.mark.usefixtures("history")
def test_verifying_needs_the_audit_right_at_the_global_scope(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    with recorded(db) as events:
        with pytest.raises(NotFound):
            service.verify(TEAM_AUDITOR)
        with pytest.raises(Forbidden):
            service.verify(READER)
        assert service.verify(ADMIN).ok

    assert [(e.actor, e.action, e.outcome) for e in events] == [
        (TEAM_AUDITOR.id, "audit.verify", "not_found"),
        (READER.id, "audit.verify", "denied"),
        (ADMIN.id, "audit.verify", "success"),
    ]


# -- prune ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("history")
def test_prune_deletes_up_to_the_last_checkpoint_older_than_the_cutoff(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    # checkpoints at 2, 4 and 6, made when events 2, 4 and 6 were (1 h apart from NOW + 1 h)
    assert service.prune(ADMIN, NOW + timedelta(hours=2)) == 0  # none is older
    assert service.prune(ADMIN, NOW + timedelta(hours=3)) == 2
    # event 3 is older than the cutoff, but no checkpoint after it is
    assert service.prune(ADMIN, NOW + timedelta(hours=4, minutes=30)) == 2

    events = db.database.audit_events()
    assert seqs(events)[0] == 5
    assert [(e.action, e.details) for e in events if e.action == "audit.prune"] == [
        ("audit.prune", {"removed": 0}),
        ("audit.prune", {"removed": 2}),
        ("audit.prune", {"removed": 2}),
    ]


@pytest.mark.usefixtures("history")
def test_a_pruned_trail_verifies_from_the_checkpoint_it_was_pruned_to(
    service: AuditService,
) -> None:
    service.prune(ADMIN, NOW + timedelta(hours=5))

    assert service.verify(AUDITOR) == Verification(3, 5, 7, None)  # 5, 6 and the prune
    assert service.verify(AUDITOR, 1, 6) == Verification(2, 5, 6, None)


@pytest.mark.usefixtures("history")
def test_a_pruned_trail_whose_anchor_is_forged_or_gone_is_reported(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    service.prune(ADMIN, NOW + timedelta(hours=5))
    anchor = db.database.tables.audit_checkpoints[4]
    broken = BrokenLink(5, "the events before it are gone without a signed checkpoint")

    db.database.tables.audit_checkpoints[4] = replace(anchor, mac="0" * 64)
    assert service.verify(AUDITOR).broken == broken
    del db.database.tables.audit_checkpoints[4]
    assert service.verify(AUDITOR).broken == broken


@pytest.mark.usefixtures("history")
def test_only_admins_of_the_global_scope_prune(
    service: AuditService, db: FakeUnitOfWorkFactory
) -> None:
    cutoff = NOW + timedelta(days=1)

    with recorded(db) as events:
        for actor, error in [
            (AUDITOR, Forbidden),  # reading the trail is not deleting it
            (READER, Forbidden),
            (ORGANIZATION_ADMIN, NotFound),
            (TEAM_AUDITOR, NotFound),
        ]:
            with pytest.raises(error):
                service.prune(actor, cutoff)

    assert [e.outcome for e in events] == ["denied", "denied", "not_found", "not_found"]
    assert seqs(db.database.audit_events())[0] == 1
    assert service.prune(ADMIN, cutoff) == 10


# -- verification in segments side by side --------------------------------------------------


def segmented(
    db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock, processes: int = 3
) -> tuple[AuditService, FakeChainSegments]:
    """A service that verifies from 4 events on in segments, on `processes` fake processes."""
    segments = FakeChainSegments(db, processes)
    return AuditService(db, trail, CHECKPOINT_KEY, clock, segments, parallel_from=4), segments


@pytest.mark.usefixtures("history")
def test_a_long_trail_is_verified_in_segments_each_from_a_signed_checkpoint(
    db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock
) -> None:
    service, segments = segmented(db, trail, clock)
    checkpoints = db.database.tables.audit_checkpoints

    assert service.verify(AUDITOR) == Verification(6, 1, 6, None)

    [used] = segments.calls
    assert used == [
        ChainSegment(1, 2, GENESIS, (checkpoints[2],)),
        ChainSegment(3, 4, checkpoints[2].hash, (checkpoints[4],)),
        ChainSegment(5, 6, checkpoints[4].hash, (checkpoints[6],)),
    ]
    assert db.database.audit_events()[-1].details == {"ok": True, "checked": 6}


def _edit(seq: int, **fields: Any) -> Callable[[FakeUnitOfWorkFactory], None]:
    return lambda db: db.database.replace_audit_event(seq, **fields)


def _delete(seq: int) -> Callable[[FakeUnitOfWorkFactory], None]:
    return lambda db: db.database.tables.audit_events.__delitem__(seq)


def _forge_checkpoint(seq: int) -> Callable[[FakeUnitOfWorkFactory], None]:
    def forge(db: FakeUnitOfWorkFactory) -> None:
        checkpoints = db.database.tables.audit_checkpoints
        checkpoints[seq] = replace(checkpoints[seq], mac="0" * 64)

    return forge


def _drop_checkpoint(seq: int) -> Callable[[FakeUnitOfWorkFactory], None]:
    return lambda db: db.database.tables.audit_checkpoints.__delitem__(seq)


def _rehash(seq: int) -> Callable[[FakeUnitOfWorkFactory], None]:
    """An edited event whose own hash was recomputed: caught where the next link or the
    checkpoint no longer matches."""

    def rehash(db: FakeUnitOfWorkFactory) -> None:
        events = db.database.tables.audit_events
        edited = replace(events[seq], actor="user:mallory")
        digest = event_hash(seq, edited.prev_hash or GENESIS, edited)
        events[seq] = replace(edited, hash=digest)

    return rehash


@pytest.mark.parametrize(
    "tamper",
    [
        _edit(1, actor="user:mallory"),  # in the first segment
        _edit(3, resource="secret:x"),  # first event of a later segment
        _edit(4, outcome="denied"),  # the event a cut is anchored on
        _edit(6, version=9),  # the last segment
        _delete(4),
        _delete(5),
        _rehash(2),  # the checkpoint at the cut no longer matches its event
        _rehash(3),
        _forge_checkpoint(2),
        _forge_checkpoint(4),
        _drop_checkpoint(4),
    ],
)
@pytest.mark.usefixtures("history")
def test_a_broken_trail_is_reported_as_one_pass_reports_it(
    db: FakeUnitOfWorkFactory,
    trail: AuditTrail,
    clock: FixedClock,
    tamper: Callable[[FakeUnitOfWorkFactory], None],
) -> None:
    tamper(db)
    service, _ = segmented(db, trail, clock)
    in_one_pass = AuditService(db, trail, CHECKPOINT_KEY, clock)

    # The range of the six events: the verification each records does not change what the
    # other one reads.
    found = service.verify(AUDITOR, 1, 6)

    assert not found.ok
    assert found == in_one_pass.verify(AUDITOR, 1, 6)


@pytest.mark.usefixtures("history")
def test_segments_that_checked_fewer_events_than_they_hold_are_not_taken_for_intact(
    db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock
) -> None:
    db.database.replace_audit_event(5, actor="user:mallory")
    service, segments = segmented(db, trail, clock)
    # A store whose processes found no broken link, having read one event less each.
    segments.answer = lambda cut: [(s.last - s.first, None) for s in cut]

    assert service.verify(AUDITOR, 1, 6) == Verification(
        4, 1, 4, BrokenLink(5, "its content was altered")
    )
    assert len(segments.calls) == 1  # tried, then verified in one pass


@pytest.mark.usefixtures("history")
def test_a_store_that_cannot_verify_in_segments_verifies_in_one_pass(
    db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock
) -> None:
    service, segments = segmented(db, trail, clock)
    segments.answer = lambda cut: None

    assert service.verify(AUDITOR, 1, 6) == Verification(6, 1, 6, None)
    assert len(segments.calls) == 1


@pytest.mark.usefixtures("history")
def test_a_short_trail_or_one_process_is_verified_in_one_pass(
    db: FakeUnitOfWorkFactory, trail: AuditTrail, clock: FixedClock
) -> None:
    segments = FakeChainSegments(db, 3)
    below = AuditService(db, trail, CHECKPOINT_KEY, clock, segments, parallel_from=7)
    assert below.verify(AUDITOR, 1, 6) == Verification(6, 1, 6, None)
    alone = AuditService(db, trail, CHECKPOINT_KEY, clock, FakeChainSegments(db, 1), 4)
    assert alone.verify(AUDITOR, 1, 6) == Verification(6, 1, 6, None)
    assert segments.calls == []
