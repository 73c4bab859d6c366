"""The audit trail of core.audit: the hash chain, its verification and what it catches, signed
checkpoints, and how a use case's attempt is recorded and copied to the sinks."""

from __future__ import annotations

import json
import logging
from dataclasses import FrozenInstanceError, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest

from core.audit import AuditTrail
from core.audit_chain import (
    GENESIS,
    PLACEHOLDER_NOTE,
    AuditChain,
    canonical_content,
    canonical_fields,
    chained,
    checkpoint_mac,
    derive_checkpoint_key,
    event_hash,
    placeholder_of,
    verify_chain,
)
from core.domain.audit import AuditEvent, BrokenLink, Checkpoint, RequestInfo, with_fields
from core.domain.audit_bounds import TEXT_LIMITS
from core.domain.callers import Caller
from core.domain.errors import Conflict, Forbidden, NotFound, ServiceError
from core.domain.values import Principal
from tests.fakes import (
    CHECKPOINT_KEY,
    FakeUnitOfWorkFactory,
    FixedClock,
    RecordingSink,
    make_audit_trail,
)

NOW = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
ALICE = Principal("user:alice", "user")
CHAIN_FIELDS = {"seq", "prev_hash", "hash"}


def event(number: int = 1, **overrides: Any) -> AuditEvent:
    """An event with every field filled in, so that each can be altered."""
    fields_: dict[str, Any] = {
        "time": NOW + timedelta(seconds=number),
        "actor": "user:alice",
        "actor_type": "user",
        "action": "secret.read_value",
        "resource": f"secret:{number:08d}-0000-0000-0000-000000000000",
        "outcome": "success",
        "request_id": f"req-{number}",
        "source_ip": "192.0.2.7",
        "user_agent": "secretctl/1.0",
        "scope": "project/p-42",
        "scope_path": "/1/2/3/4/",
        "version": number,
        "reason": "none",
        "details": {"value_hmac": f"hmac-{number}", "count": number},
    }
    return AuditEvent(**{**fields_, **overrides})


def chain_of(count: int) -> list[AuditEvent]:
    return chained([event(n) for n in range(1, count + 1)], 0, GENESIS)


def signed(events: list[AuditEvent], *seqs: int, key: bytes = CHECKPOINT_KEY) -> list[Checkpoint]:
    chain = AuditChain(key)
    return [chain.checkpoint(s, events[s - 1].hash, NOW) for s in seqs]


def verify(
    events: list[AuditEvent], checkpoints: list[Checkpoint] | None = None
) -> tuple[int, BrokenLink | None]:
    return verify_chain(events, checkpoints or [], CHECKPOINT_KEY)


# -- the chain ------------------------------------------------------------------------------


def test_each_event_holds_its_place_and_the_hash_of_its_predecessor() -> None:
    events = chain_of(3)

    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.prev_hash for e in events] == [GENESIS, events[0].hash, events[1].hash]
    for linked in events:
        assert linked.hash == event_hash(linked.seq, linked.prev_hash, linked)
    assert len({e.hash for e in events}) == 3
    assert GENESIS == "0" * 64


def test_a_chain_continues_from_its_head() -> None:
    first = chain_of(2)

    [third] = chained([event(3)], 2, first[-1].hash)

    assert third == chain_of(3)[2]


def test_the_hash_covers_the_canonical_content_and_the_place() -> None:
    original = event(details={"a": 1, "b": [1, 2]})
    reordered = event(details={"b": [1, 2], "a": 1})

    assert event_hash(1, GENESIS, original) == event_hash(1, GENESIS, reordered)
    assert event_hash(1, GENESIS, original) != event_hash(2, GENESIS, original)
    assert event_hash(1, GENESIS, original) != event_hash(1, "f" * 64, original)
    # what the chain fields hold is not part of the content
    assert event_hash(1, GENESIS, replace(original, seq=9, hash="x")) == event_hash(
        1, GENESIS, original
    )


def _encoded(event: AuditEvent) -> str:
    """What the hash covers, written the general way: the content dict, canonically."""
    return json.dumps(event.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # every field filled in
        {  # every optional field empty
            "request_id": None,
            "source_ip": None,
            "user_agent": None,
            "scope": None,
            "scope_path": None,
            "version": None,
            "reason": None,
            "details": {},
        },
        {"user_agent": 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f', "version": 0},
        {"actor": "user:zoë", "resource": "secret:日本語/キー", "reason": "emoji \U0001f511"},
        {"details": {"z": [1, "é", None, {"b": True, "a": 1.5}], "a": {"nested": "\u2028"}}},
        {"time": datetime(2024, 7, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))},
        {"time": datetime(2024, 7, 1, 9, 0)},  # naive: isoformat without an offset
        {"version": -7, "scope_path": ""},
    ],
)
def test_the_fast_canonical_content_is_the_encoders(overrides: dict[str, Any]) -> None:
    """`canonical_content` writes field by field: byte for byte what encoding `content()`
    gives, for every field (a field added to the event and not to it fails here)."""
    subject = event(7, **overrides)
    assert canonical_content(subject) == _encoded(subject)
    assert canonical_content(subject).isascii()
    assert canonical_fields(subject.content()) == _encoded(subject)  # as verification reads it


class _Kind(StrEnum):
    USER = "user"


@pytest.mark.parametrize(
    "overrides",
    [
        {"actor_type": _Kind.USER},  # a str subclass
        {"version": True},  # a bool is an int to isinstance, `true` to JSON
        {"version": 3.0},
        {"scope": 42},
    ],
)
def test_fields_of_other_types_are_left_to_the_encoder(overrides: dict[str, Any]) -> None:
    subject = event(7, **overrides)
    assert canonical_content(subject) == _encoded(subject)
    assert canonical_fields(subject.content()) == _encoded(subject)


def test_the_content_is_every_field_but_the_chain_fields() -> None:
    content = event().content()

    assert set(content) == {f.name for f in fields(AuditEvent)} - CHAIN_FIELDS
    assert content["time"] == (NOW + timedelta(seconds=1)).isoformat()


def test_an_intact_chain_verifies() -> None:
    events = chain_of(10)

    assert verify(events, signed(events, 5, 10)) == (10, None)
    assert verify([]) == (0, None)


# -- what verification catches --------------------------------------------------------------

CONTENT_FIELDS = sorted({f.name for f in fields(AuditEvent)} - CHAIN_FIELDS)


def altered(value: Any) -> Any:
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, dict):
        return {**value, "count": -1}
    return f"{value}-edited"


@pytest.mark.parametrize("name", CONTENT_FIELDS)
def test_an_edited_field_breaks_the_chain_at_that_event(name: str) -> None:
    events = chain_of(5)
    events[2] = replace(events[2], **{name: altered(getattr(events[2], name))})

    assert verify(events) == (2, BrokenLink(3, "its content was altered"))


def test_an_emptied_field_breaks_the_chain() -> None:
    events = chain_of(3)
    events[1] = replace(events[1], reason=None, details={})

    assert verify(events) == (1, BrokenLink(2, "its content was altered"))


def test_a_replaced_hash_breaks_the_chain() -> None:
    events = chain_of(3)
    events[1] = replace(events[1], hash="f" * 64)

    assert verify(events) == (1, BrokenLink(2, "its content was altered"))


def test_a_deleted_event_in_the_middle_is_missing() -> None:
    events = chain_of(5)
    del events[2]

    assert verify(events) == (2, BrokenLink(3, "event 3 is missing"))


def test_two_swapped_events_do_not_follow_their_predecessors() -> None:
    events = chain_of(5)
    third, fourth = events[2], events[3]
    events[2], events[3] = replace(fourth, seq=3), replace(third, seq=4)

    assert verify(events) == (2, BrokenLink(3, "it does not follow its predecessor"))


def test_a_cut_tail_is_caught_by_a_signed_checkpoint_that_covers_it() -> None:
    events = chain_of(10)
    checkpoints = signed(events, 5, 8)

    assert verify(events[:6], checkpoints) == (6, BrokenLink(8, "a signed checkpoint has no event"))
    # past the last checkpoint the chain alone cannot tell (the head row can: AuditService)
    assert verify(events[:9], checkpoints) == (9, None)


def test_a_forged_checkpoint_mac_is_caught() -> None:
    events = chain_of(6)
    [genuine] = signed(events, 4)

    forged = replace(genuine, mac="0" * 64)

    assert verify(events, [forged]) == (3, BrokenLink(4, "it does not match its signed checkpoint"))
    assert verify_chain(events, [genuine], derive_checkpoint_key(b"another key")) == (
        3,
        BrokenLink(4, "it does not match its signed checkpoint"),
    )


def test_a_chain_recomputed_without_the_key_is_caught_by_the_checkpoints() -> None:
    events = chain_of(10)
    checkpoints = signed(events, 4, 8)
    # The attacker edits event 2 and rehashes everything after it: the chain links again...
    edited = [*events[:1], replace(events[1], actor="user:mallory"), *events[2:]]
    rewritten = chained(edited, 0, GENESIS)
    assert verify(rewritten) == (10, None)

    # ...but not to the signed checkpoints, kept as they were or re-signed without the key.
    assert verify(rewritten, checkpoints) == (
        3,
        BrokenLink(4, "it does not match its signed checkpoint"),
    )
    resigned = signed(rewritten, 4, 8, key=b"a key the attacker made up")
    assert verify(rewritten, resigned) == (
        3,
        BrokenLink(4, "it does not match its signed checkpoint"),
    )


def test_a_rewritten_chain_whose_checkpoints_were_dropped_is_caught_by_the_cadence() -> None:
    events = chain_of(10)
    rewritten = chained([event(n, actor="user:mallory") for n in range(1, 11)], 0, GENESIS)
    assert verify_chain(rewritten, [], CHECKPOINT_KEY) == (10, None)  # links, no checkpoints
    assert verify_chain(rewritten, [], CHECKPOINT_KEY, checkpoint_every=4) == (
        3,
        BrokenLink(4, "its signed checkpoint is missing"),
    )
    honest = signed(events, 4, 8)
    assert verify_chain(events, honest, CHECKPOINT_KEY, checkpoint_every=4) == (10, None)


def test_verification_resumes_from_a_trusted_hash() -> None:
    events = chain_of(10)

    assert verify_chain(
        events[6:], signed(events, 8), CHECKPOINT_KEY, start_seq=7, start_prev_hash=events[5].hash
    ) == (4, None)
    assert verify_chain(events[6:], [], CHECKPOINT_KEY, start_seq=7, start_prev_hash=GENESIS) == (
        0,
        BrokenLink(7, "it does not follow its predecessor"),
    )


def test_checkpoint_macs_depend_on_the_key_seq_and_hash() -> None:
    key = derive_checkpoint_key(b"provider secret")

    assert key != b"provider secret" and len(key) == 32
    assert key == derive_checkpoint_key(b"provider secret")
    mac = checkpoint_mac(key, 5, "a" * 64)
    assert mac != checkpoint_mac(key, 6, "a" * 64)
    assert mac != checkpoint_mac(key, 5, "b" * 64)
    assert mac != checkpoint_mac(derive_checkpoint_key(b"other"), 5, "a" * 64)


# -- appending ------------------------------------------------------------------------------


@pytest.fixture
def db() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def append(db: FakeUnitOfWorkFactory, chain: AuditChain, count: int) -> list[AuditEvent]:
    with db() as uow:
        linked = chain.append(uow, [event(n) for n in range(count)])
        uow.commit()
    return linked


@pytest.mark.parametrize(
    ("every", "batch", "expected"),
    [
        (3, 1, [3, 6, 9]),
        (3, 2, [3, 6, 9]),
        (4, 4, [4, 8]),
        (5, 5, [5, 10]),
        (1, 3, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ],
)
def test_each_event_at_a_multiple_of_the_cadence_is_signed_whatever_the_batch(
    db: FakeUnitOfWorkFactory, every: int, batch: int, expected: list[int]
) -> None:
    chain = AuditChain(CHECKPOINT_KEY, checkpoint_every=every)
    for _ in range(10 // batch):
        append(db, chain, batch)

    events, checkpoints = db.database.audit_events(), db.database.audit_checkpoints()
    assert [c.seq for c in checkpoints] == expected
    for checkpoint in checkpoints:
        linked = events[checkpoint.seq - 1]
        assert (checkpoint.hash, checkpoint.created_at) == (linked.hash, linked.time)
        assert checkpoint.mac == checkpoint_mac(CHECKPOINT_KEY, checkpoint.seq, checkpoint.hash)
    assert verify(events, checkpoints) == (len(events), None)


def test_appends_continue_the_stored_chain(db: FakeUnitOfWorkFactory) -> None:
    chain = AuditChain(CHECKPOINT_KEY)

    first = append(db, chain, 2)
    second = append(db, chain, 3)

    assert [e.seq for e in first + second] == [1, 2, 3, 4, 5]
    assert second[0].prev_hash == first[-1].hash
    with db() as uow:
        assert uow.audit.head() == (5, second[-1].hash)
    assert db.database.audit_events() == first + second


def test_an_append_that_is_not_committed_leaves_no_trace(db: FakeUnitOfWorkFactory) -> None:
    chain = AuditChain(CHECKPOINT_KEY, checkpoint_every=1)
    append(db, chain, 1)

    with db() as uow:
        chain.append(uow, [event(2)])  # and then the transaction rolls back

    assert [e.seq for e in db.database.audit_events()] == [1]
    assert [c.seq for c in db.database.audit_checkpoints()] == [1]
    assert [e.seq for e in append(db, chain, 1)] == [2]


def test_the_chain_key_is_never_shown() -> None:
    assert CHECKPOINT_KEY.hex() not in repr(AuditChain(CHECKPOINT_KEY))
    assert "redacted" in repr(AuditChain(CHECKPOINT_KEY))


# -- attempts -------------------------------------------------------------------------------

REQUEST = RequestInfo(request_id="req-42", source_ip="198.51.100.4", user_agent="curl/8")
ALICE_CALLING = Caller.of(ALICE, REQUEST)  # her request's facts go into the events


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def trail(db: FakeUnitOfWorkFactory, clock: FixedClock, sink: RecordingSink) -> AuditTrail:
    return make_audit_trail(db, clock, sinks=[sink])


def test_a_successful_attempt_is_recorded_with_the_change_it_made(
    trail: AuditTrail, db: FakeUnitOfWorkFactory, clock: FixedClock
) -> None:
    actor = ALICE_CALLING
    with trail.attempt(actor, "scope.read", "scope:project/p-42", scope="project/p-42") as attempt:
        clock.advance(timedelta(seconds=5))  # the event is stamped when the attempt begins
        attempt.learn(scope_path="/1/4/")
        with db() as uow:
            attempt.succeed(uow, details={"total": 3})
            uow.commit()

    [recorded] = db.database.audit_events()
    assert recorded == attempt.linked[0]
    assert (recorded.time, recorded.actor, recorded.actor_type) == (NOW, ALICE.id, "user")
    assert (recorded.request_id, recorded.source_ip, recorded.user_agent) == (
        "req-42",
        "198.51.100.4",
        "curl/8",
    )
    assert (recorded.action, recorded.resource, recorded.scope, recorded.scope_path) == (
        "scope.read",
        "scope:project/p-42",
        "project/p-42",
        "/1/4/",
    )
    assert (recorded.outcome, recorded.reason, recorded.details) == ("success", None, {"total": 3})


def test_an_attempt_that_ends_without_recording_its_success_is_a_bug(
    trail: AuditTrail, db: FakeUnitOfWorkFactory
) -> None:
    with pytest.raises(RuntimeError, match=r"secret\.delete did not record its success"):
        with trail.attempt(ALICE, "secret.delete", "secret:1"):
            pass

    assert db.database.audit_events() == []


@pytest.mark.parametrize(
    ("error", "outcome", "reason"),
    [
        (Forbidden("no"), "denied", "forbidden"),
        (NotFound("no such thing"), "not_found", "not_found"),
        (Conflict("taken"), "error", "conflict"),
        (ServiceError("broken"), "error", "internal_error"),
        (ValueError("a bug"), "error", "ValueError"),
    ],
)
def test_a_failed_attempt_is_recorded_with_its_outcome_and_reraised(
    trail: AuditTrail,
    db: FakeUnitOfWorkFactory,
    sink: RecordingSink,
    error: Exception,
    outcome: str,
    reason: str,
) -> None:
    with pytest.raises(type(error)) as caught:
        with trail.attempt(ALICE, "secret.write_value", "secret:1") as attempt:
            attempt.learn(scope="project/p-42", version=7)
            raise error

    assert caught.value is error
    [recorded] = db.database.audit_events()
    assert (recorded.outcome, recorded.reason) == (outcome, reason)
    assert (recorded.scope, recorded.version) == ("project/p-42", 7)  # what was learnt before
    assert sink.events == [recorded]


def test_a_failure_after_the_success_was_written_but_not_committed(
    trail: AuditTrail, db: FakeUnitOfWorkFactory, sink: RecordingSink
) -> None:
    with pytest.raises(Conflict):
        with trail.attempt(ALICE, "secret.write_value", "secret:1") as attempt:
            with db() as uow:
                attempt.succeed(uow, version=2)
                raise Conflict("lost a race")  # before the commit: rolled back

    assert [(e.seq, e.outcome) for e in db.database.audit_events()] == [(1, "error")]
    assert [(e.seq, e.outcome) for e in sink.events] == [(1, "error")]


def test_an_interrupt_is_not_an_outcome(trail: AuditTrail, db: FakeUnitOfWorkFactory) -> None:
    with pytest.raises(KeyboardInterrupt):
        with trail.attempt(ALICE, "secret.read_value", "secret:1"):
            raise KeyboardInterrupt

    assert db.database.audit_events() == []


def test_related_events_are_recorded_with_the_attempt_in_its_transaction(
    trail: AuditTrail, db: FakeUnitOfWorkFactory, sink: RecordingSink
) -> None:
    with trail.attempt(ALICE_CALLING, "secret.resolve", "scope:p", details={"x": 1}) as attempt:
        reads = [attempt.related("secret.read_value", f"secret:{n}", version=n) for n in (1, 2)]
        with db() as uow:
            attempt.succeed(uow, also=reads)
            uow.commit()

    events = db.database.audit_events()
    assert [(e.seq, e.action, e.resource, e.version) for e in events] == [
        (1, "secret.resolve", "scope:p", None),
        (2, "secret.read_value", "secret:1", 1),
        (3, "secret.read_value", "secret:2", 2),
    ]
    assert {(e.actor, e.request_id, e.time, e.outcome) for e in events} == {
        (ALICE.id, "req-42", NOW, "success")
    }
    assert [e.details for e in events] == [{"x": 1}, {}, {}]
    assert db.committed == 1
    assert sink.batches == [events]


def test_sinks_get_events_only_once_they_are_committed(
    trail: AuditTrail, db: FakeUnitOfWorkFactory, sink: RecordingSink
) -> None:
    with trail.attempt(ALICE, "scope.list", "scopes") as attempt:
        with db() as uow:
            attempt.succeed(uow)
            assert sink.events == []
            uow.commit()
        assert sink.events == []  # the use case may still fail

    assert sink.events == db.database.audit_events()


def test_a_commit_that_fails_sends_the_sinks_only_the_failure(
    trail: AuditTrail, db: FakeUnitOfWorkFactory, sink: RecordingSink
) -> None:
    db.database.fail_next_commit(ServiceError("database went away"))

    with pytest.raises(ServiceError):
        with trail.attempt(ALICE, "scope.list", "scopes") as attempt:
            with db() as uow:
                attempt.succeed(uow)
                uow.commit()

    assert [(e.outcome, e.reason) for e in sink.events] == [("error", "internal_error")]
    assert sink.events == db.database.audit_events()


def test_a_failing_sink_does_not_fail_the_request(
    db: FakeUnitOfWorkFactory, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    broken, working = RecordingSink("broken"), RecordingSink("working")
    broken.down = True
    trail = make_audit_trail(db, clock, sinks=[broken, working])

    with caplog.at_level(logging.WARNING, logger="core.audit"):
        with trail.attempt(ALICE, "scope.list", "scopes") as attempt:
            with db() as uow:
                attempt.succeed(uow)
                uow.commit()
        trail.refused(ALICE, "auth.authenticate", "/api/v1/secrets", "unauthenticated")

    assert len(db.database.audit_events()) == 2
    assert working.events == db.database.audit_events()
    assert [r.getMessage() for r in caplog.records] == ["audit sink broken failed"] * 2


def test_a_refused_request_is_recorded_as_denied(
    trail: AuditTrail, db: FakeUnitOfWorkFactory, sink: RecordingSink
) -> None:
    anonymous = Caller.of(Principal("anonymous", "anonymous"), REQUEST)

    trail.refused(anonymous, "auth.authenticate", "/api/v1/secrets", "unauthenticated")

    [recorded] = db.database.audit_events()
    assert (recorded.actor, recorded.action, recorded.resource) == (
        "anonymous",
        "auth.authenticate",
        "/api/v1/secrets",
    )
    assert (recorded.outcome, recorded.reason, recorded.request_id) == (
        "denied",
        "unauthenticated",
        "req-42",
    )
    assert sink.events == [recorded]


def test_a_failure_that_cannot_be_recorded_is_logged_and_the_original_error_raised(
    trail: AuditTrail,
    db: FakeUnitOfWorkFactory,
    sink: RecordingSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db.database.audit_down = True

    with caplog.at_level(logging.ERROR, logger="core.audit"), pytest.raises(Forbidden):
        with trail.attempt(ALICE, "secret.read_value", "secret:1"):
            raise Forbidden("no")
    trail.refused(ALICE, "auth.authenticate", "/x", "unauthenticated")

    assert db.database.audit_events() == sink.events == []
    assert [r.getMessage() for r in caplog.records] == [
        "could not record audit event secret.read_value secret:1 (denied)",
        "could not record audit event auth.authenticate /x (denied)",
    ]


# -- the fake's chain lock, as the database's ---------------------------------------------


def test_the_chain_lock_is_held_until_the_unit_of_work_ends(db: FakeUnitOfWorkFactory) -> None:
    chain = AuditChain(CHECKPOINT_KEY)

    with db() as holder:
        chain.append(holder, [event(1)])
        with db() as other, pytest.raises(RuntimeError, match="deadlock"):
            chain.append(other, [event(2)])
        holder.commit()
        with db() as other:  # released by the commit; and the new head is what it reads
            assert chain.append(other, [event(2)])[0].seq == 2


def test_with_fields_is_replace_without_its_cost() -> None:
    original = event(3, details={"k": "v"})
    changed = with_fields(original, action="secret.resolve", seq=9, hash="h" * 64)
    assert changed == replace(original, action="secret.resolve", seq=9, hash="h" * 64)
    assert original.action == "secret.read_value" and original.seq is None  # untouched
    with pytest.raises(FrozenInstanceError):
        changed.action = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field 'acton'"):
        with_fields(original, acton="typo")


# -- what an event may hold (core.domain.audit_bounds) ---------------------------------------------

HOSTILE = "\x00\ud800\x1b[2J\x7f\x85 end"


def test_a_clean_event_is_bounded_as_it_is() -> None:
    clean = event(3, user_agent="agent ünïcödé ✓", details={"nested": {"list": [1, 2.5, None]}})
    assert clean.bounded() is clean


@pytest.mark.parametrize(("name", "limit"), sorted(TEXT_LIMITS.items()))
def test_control_characters_are_escaped_and_surrogates_replaced_in_every_text(
    name: str, limit: int
) -> None:
    escaped = "\\x00\ufffd\\x1b[2J\\x7f\\x85 end"
    bounded = event(**{name: HOSTILE}).bounded()
    assert getattr(bounded, name) == (escaped if len(escaped) <= limit else escaped[:15] + "…")


@pytest.mark.parametrize(("name", "limit"), sorted(TEXT_LIMITS.items()))
def test_every_text_is_cut_to_its_column_with_a_marker(name: str, limit: int) -> None:
    bounded = event(**{name: "é" * limit}).bounded()
    assert getattr(bounded, name) == "é" * limit  # exactly its column: kept
    bounded = event(**{name: "\x00" * limit}).bounded()  # longer once escaped
    assert getattr(bounded, name) == ("\\x00" * limit)[: limit - 1] + "…"


@pytest.mark.parametrize(
    ("version", "asked"),
    [
        (2**31, "2147483648"),
        (-(2**31) - 1, "-2147483649"),
        (99999999999999999999, "99999999999999999999"),
        (10**5000, "<an integer of 16610 bits>"),
        (1.9, "1.9"),
        ("7", "7"),
        (True, "1"),
    ],
    ids=["2^31", "-2^31-1", "20 digits", "5001 digits", "fraction", "text", "bool"],
)
def test_a_version_out_of_its_column_is_left_out_and_noted(version: Any, asked: str) -> None:
    bounded = event(version=version, details={"k": "v"}).bounded()
    assert bounded.version is None
    assert bounded.details == {"k": "v", "out_of_range": {"version": asked}}


def test_a_version_in_its_column_is_kept() -> None:
    for version in (-(2**31), 0, 1, 2**31 - 1):
        assert event(version=version).bounded().version == version


def test_details_are_bounded_in_depth_size_and_kind() -> None:
    deep: Any = "bottom"
    for _ in range(20):
        deep = {"d": deep}
    details = {
        "deep": deep,
        "many": list(range(5000)),
        "long": "x" * 5000,
        "nul": "a\x00b\nc",  # a JSON string: the newline is kept, the NUL escaped
        "nan": float("nan"),
        "huge": 10**30,
        "object": object(),
        "tuple": (1, 2),
        3: "a number key",
        "k\ud800" * 100: "a long key",
    }
    bounded = event(details=details).bounded().details
    depth, node = 0, bounded["deep"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["d"]
    assert node == "…" and depth < 10
    assert len(bounded["many"]) <= 1001 and bounded["many"][-1].startswith("… ")
    assert "long" not in bounded or len(bounded["long"]) <= 1024
    json.dumps(bounded, allow_nan=False)  # JSON every store keeps
    again = event(details=details).bounded()
    assert again.bounded() == again  # idempotent


def test_small_details_of_every_kind_are_kept() -> None:
    details = {
        "nul": "a\x00b\nc",
        "nan": float("nan"),
        "huge": 10**30,
        "object": object(),
        "tuple": (1, 2),
        3: "a number key",
        "k\ud800": "surrogate key",
    }
    assert event(details=details).bounded().details == {
        "nul": "a\\x00b\nc",
        "nan": None,
        "huge": "1000000000000000000000000000000",
        "object": "<object>",
        "tuple": [1, 2],
        "3": "a number key",
        "k\ufffd": "surrogate key",
    }


def test_texts_of_other_types_are_numbers_or_named_by_their_type() -> None:
    bounded = event(scope=42, actor_type=_Kind.USER, reason=object()).bounded()
    assert (bounded.scope, bounded.actor_type, bounded.reason) == ("42", "user", "<object>")
    assert type(bounded.actor_type) is str


def test_a_bounded_event_is_chained_and_verifies() -> None:
    hostile = [
        event(n, **{name: HOSTILE * 300 for name in TEXT_LIMITS}, version=2**40)
        for n in range(1, 4)
    ]
    linked = chained([e.bounded() for e in hostile], 0, GENESIS)
    assert all(canonical_content(e).isascii() for e in linked)
    assert verify(linked) == (3, None)


def test_a_placeholder_keeps_the_attempt_in_ascii() -> None:
    original = event(details={"k": "v"}, resource="secret:café\x00", actor=None, outcome="odd")
    placeholder = placeholder_of(original.bounded())
    assert placeholder.resource == "secret:caf\\xe9\\x00"
    assert (placeholder.actor, placeholder.outcome, placeholder.version) == (
        "unknown",
        "error",
        None,
    )
    assert placeholder.details == {"placeholder": PLACEHOLDER_NOTE["placeholder"]}
    assert all(
        getattr(placeholder, name) is None or getattr(placeholder, name).isascii()
        for name in TEXT_LIMITS
    )
    assert placeholder.time == original.time and placeholder.action == original.action


def test_the_trail_records_hostile_request_facts_bounded_and_logs_them_so(
    db: FakeUnitOfWorkFactory, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    request = RequestInfo(request_id=HOSTILE, source_ip=HOSTILE * 100, user_agent=HOSTILE * 100)
    trail = make_audit_trail(db, clock)
    anonymous = Caller.of(Principal("anonymous", "anonymous"), request)
    trail.refused(anonymous, "auth.authenticate", f"/x{HOSTILE}", "bad")
    alice = Caller.of(ALICE, request)
    with pytest.raises(NotFound), trail.attempt(alice, "secret.read_value", "s", version=2**63):
        raise NotFound("no")
    db.database.audit_down = True
    with caplog.at_level(logging.ERROR, logger="core.audit"):
        trail.refused(anonymous, "auth.authenticate", HOSTILE, "bad")

    refused, failed = db.database.audit_events()
    assert refused.resource == "/x\\x00\ufffd\\x1b[2J\\x7f\\x85 end"
    assert len(refused.user_agent or "") == TEXT_LIMITS["user_agent"]
    assert len(refused.source_ip or "") == TEXT_LIMITS["source_ip"]
    assert (failed.version, failed.details) == (None, {"out_of_range": {"version": str(2**63)}})
    [logged] = [r.getMessage() for r in caplog.records]
    assert logged.isprintable() and "\\x00\ufffd" in logged
