"""The worker on the fakes, with a controllable clock: grace periods, expiry warnings, scheduled
rotations, pruning, retention purges and event delivery; claims, and a worker that dies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import ConfigurationError, Forbidden, NotFound
from core.domain.migration import MigrationRequest
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.domain.work import ExpiryNotice, Lease
from core.events import DeliveryPolicy
from core.migration.service import MigrationService
from core.policy import SecretPolicy, ValueChecksum
from core.worker import Worker, due_warning
from core.worker_status import WorkerStatusService
from ports.workers import Backlog, WorkerRecord, WorkerRegistry
from tests.fakes import InMemoryBackend, make_audit_trail, recorded
from tests.unit.lifecycle_support import (
    ALICE,
    CHECKSUM_KEY,
    FIRST,
    NOW,
    PROJECT,
    VERA,
    Lifecycle,
    make_lifecycle,
)


class Crash(BaseException):
    """The worker's process dying in the middle of a job."""


@pytest.fixture
def life() -> Lifecycle:
    return make_lifecycle()


def write(life: Lifecycle, secret_id, *values: bytes) -> None:
    for value in values:
        life.writes.write_value(ALICE, secret_id, SecretValue(value))


# -- grace periods --------------------------------------------------------------------------


def test_the_worker_disables_a_replaced_version_when_its_grace_period_ends(
    life: Lifecycle,
) -> None:
    secret = life.create()
    life.rotation.rotate(ALICE, secret.id, SecretValue(b"new"))
    worker = life.worker()

    life.clock.set(NOW + timedelta(hours=6) - timedelta(microseconds=1))
    assert worker.run_once().grace_ended == 0
    assert life.read(secret.id, 1) == FIRST

    life.clock.set(NOW + timedelta(hours=6))
    with recorded(life.db) as events:
        assert worker.run_once().grace_ended == 1
    assert life.states(secret.id)[0] == (1, "disabled", "previous")
    assert [(e.action, e.actor, e.details) for e in events] == [
        ("worker.end_grace", "worker", {"versions": [1]})
    ]
    assert worker.run_once().grace_ended == 0

    life.versions.enable(ALICE, secret.id, 1)  # an operator may still bring it back
    assert life.read(secret.id, 1) == FIRST


# -- expiry warnings ------------------------------------------------------------------------


def test_expiry_warnings_come_once_per_threshold_then_the_expired_notice(
    life: Lifecycle,
) -> None:
    expires = NOW + timedelta(days=40)
    secret = life.create(expires_at=expires)
    worker = life.worker()

    def warnings_at(moment) -> list[tuple[str, int | None]]:
        life.clock.set(moment)
        with recorded(life.db) as events:
            worker.run_once()
        return [
            (m.type, m.payload.get("warning_days"))
            for m in life.events()
            if m.created_at == moment and any(e.action == "worker.expiry_notice" for e in events)
        ]

    assert warnings_at(expires - timedelta(days=30, microseconds=1)) == []
    assert warnings_at(expires - timedelta(days=30)) == [("secret.expiring", 30)]
    assert warnings_at(expires - timedelta(days=8)) == []
    assert warnings_at(expires - timedelta(days=7)) == [("secret.expiring", 7)]
    assert warnings_at(expires - timedelta(hours=1)) == [("secret.expiring", 1)]
    assert warnings_at(expires - timedelta(microseconds=1)) == []
    assert warnings_at(expires) == [("secret.expired", None)]
    assert warnings_at(expires + timedelta(days=3)) == []
    notice = life.events()[-1].payload
    assert notice["expires_at"] == expires.isoformat() and notice["secret"]["id"] == str(secret.id)
    audited = [a for a in life.audited() if a[0] == "worker.expiry_notice"]
    assert len(audited) == 4  # one attempt per notice, none for passes with nothing due


def test_a_late_first_warning_is_the_nearest_threshold_only(life: Lifecycle) -> None:
    life.create(expires_at=NOW + timedelta(hours=20))
    life.worker().run_once()
    assert [(m.type, m.payload.get("warning_days")) for m in life.events()[1:]] == [
        ("secret.expiring", 1)
    ]


def test_a_new_expiry_time_starts_the_warnings_again(life: Lifecycle) -> None:
    secret = life.create(expires_at=NOW + timedelta(days=5))
    worker = life.worker()
    worker.run_once()
    from core.secrets import MetadataChanges

    later = NOW + timedelta(days=20)
    life.secrets.update_metadata(ALICE, secret.id, MetadataChanges(expires_at=later))
    worker.run_once()

    warnings = [m for m in life.events() if m.type == "secret.expiring"]
    assert [(m.payload["warning_days"], m.payload["expires_at"]) for m in warnings] == [
        (7, (NOW + timedelta(days=5)).isoformat()),
        (30, later.isoformat()),
    ]


def test_a_versions_own_expiry_counts_when_it_is_earlier(life: Lifecycle) -> None:
    secret = life.create(expires_at=NOW + timedelta(days=300))
    version_expiry = NOW + timedelta(days=2)
    life.writes.write_value(ALICE, secret.id, SecretValue(b"v2"), expires_at=version_expiry)
    life.worker().run_once()
    [warning] = [m for m in life.events() if m.type == "secret.expiring"]
    assert (warning.payload["warning_days"], warning.payload["expires_at"]) == (
        7,
        version_expiry.isoformat(),
    )


def test_warning_thresholds_come_from_configuration(life: Lifecycle) -> None:
    life.create(expires_at=NOW + timedelta(days=50))
    life.worker(expiry_warning_days=(60, 14)).run_once()
    assert [m.payload.get("warning_days") for m in life.events()[1:]] == [60]


def test_deleted_secrets_get_no_warnings(life: Lifecycle) -> None:
    secret = life.create(expires_at=NOW + timedelta(days=1))
    life.secrets.delete_secret(ALICE, secret.id)
    assert life.worker().run_once().expiry_notices == 0


@pytest.mark.parametrize(
    ("left", "last", "due"),
    [
        (timedelta(days=31), None, None),
        (timedelta(days=30), None, 30),
        (timedelta(days=29), ExpiryNotice(NOW, 30), 30),  # a notice for another expiry time
        (timedelta(days=29), "same-30", None),
        (timedelta(days=7), "same-30", 7),
        (timedelta(days=7), "same-7", None),
        (timedelta(hours=23), "same-30", 1),
        (timedelta(0), "same-1", 0),
        (-timedelta(days=9), None, 0),
        (-timedelta(days=9), "same-0", None),
    ],
)
def test_due_warning_boundaries(left, last, due) -> None:
    expires = NOW + left
    if isinstance(last, str):
        last = ExpiryNotice(expires, int(last.removeprefix("same-")))
    assert due_warning(expires, last, NOW, (30, 7, 1)) == due


def test_no_expiry_no_warning() -> None:
    assert due_warning(None, None, NOW, (30, 7, 1)) is None


# -- scheduled rotations --------------------------------------------------------------------


def test_a_due_policy_is_rotated_and_rescheduled(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id, interval_seconds=86400)
    worker = life.worker()

    life.clock.set(NOW + timedelta(days=1) - timedelta(microseconds=1))
    assert worker.run_once().rotated == 0

    life.clock.set(NOW + timedelta(days=1, minutes=3))
    with recorded(life.db) as events:
        assert worker.run_once().rotated == 1

    assert life.read(secret.id) == b"rotated-1"
    policy = life.rotation.get_policy(ALICE, secret.id)
    assert (policy.last_status, policy.next_run_at) == (
        "success",
        NOW + timedelta(days=2, minutes=3),
    )
    rotate = [e for e in events if e.action == "secret.rotate"]
    assert [(e.actor, e.outcome, e.details["scheduled"]) for e in rotate] == [
        ("worker", "success", True)
    ]
    assert worker.run_once().rotated == 0


def test_a_cron_policy_runs_at_its_times(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id, interval_seconds=None, cron="0 3 * * *")
    worker = life.worker()
    first = (NOW + timedelta(days=1)).replace(hour=3)
    assert life.rotation.get_policy(ALICE, secret.id).next_run_at == first

    life.clock.set(first)
    assert worker.run_once().rotated == 1
    assert life.rotation.get_policy(ALICE, secret.id).next_run_at == first + timedelta(days=1)


def test_a_failed_scheduled_rotation_keeps_the_value_and_is_retried_later(
    life: Lifecycle,
) -> None:
    secret = life.create()
    life.policy(secret.id, interval_seconds=4 * 86400)
    life.rotator.refuse = "HTTP 503 from the owning system"
    due = NOW + timedelta(days=4)
    life.clock.set(due)

    report = life.worker().run_once()

    assert report.rotated == 0
    assert life.read(secret.id) == FIRST
    policy = life.rotation.get_policy(ALICE, secret.id)
    assert (policy.last_status, policy.last_error, policy.next_run_at) == (
        "failed",
        "HTTP 503 from the owning system",
        due + timedelta(hours=1),
    )
    assert life.event_types()[-1] == "secret.rotation_failed"

    life.rotator.refuse = None
    life.clock.set(due + timedelta(hours=1))
    assert life.worker().run_once().rotated == 1
    assert life.rotation.get_policy(ALICE, secret.id).next_run_at == due + timedelta(
        days=4, hours=1
    )


def test_a_retry_never_comes_later_than_the_next_scheduled_run(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id, interval_seconds=600)
    life.rotator.refuse = "down"
    life.clock.set(NOW + timedelta(minutes=10))
    life.worker().run_once()
    assert life.rotation.get_policy(ALICE, secret.id).next_run_at == NOW + timedelta(minutes=20)


def test_a_policy_whose_rotator_went_away_fails_and_is_rescheduled(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    del life.rotators["scripted"]  # its plugin was disabled
    life.clock.set(NOW + timedelta(days=1))
    life.worker().run_once()
    policy = life.rotation.get_policy(ALICE, secret.id)
    assert policy.last_status == "failed" and "unknown rotator" in policy.last_error
    assert policy.next_run_at == NOW + timedelta(days=1, hours=1)


def test_the_policies_of_deleted_secrets_wait_for_their_restore(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.secrets.delete_secret(ALICE, secret.id)
    life.clock.set(NOW + timedelta(days=2))
    assert life.worker().run_once().rotated == 0
    life.secrets.restore_secret(ALICE, secret.id)
    assert life.worker().run_once().rotated == 1


# -- claims and crashes ---------------------------------------------------------------------


def lease(worker: str, now, minutes: int = 10) -> Lease:
    return Lease(worker, now, now + timedelta(minutes=minutes))


def test_two_workers_never_claim_the_same_job(life: Lifecycle) -> None:
    for n in range(3):
        life.policy(life.create(name=f"S{n}").id)
    now = NOW + timedelta(days=1)
    with life.db() as uow:
        first = uow.work.claim_rotations(lease("a", now), 2)
        second = uow.work.claim_rotations(lease("b", now), 5)
        uow.commit()
    assert len(first) == 2 and len(second) == 1
    assert not {p.secret_id for p in first} & {p.secret_id for p in second}
    with life.db() as uow:
        assert uow.work.claim_rotations(lease("c", now), 5) == []
        later = uow.work.claim_rotations(lease("c", now + timedelta(minutes=10, seconds=1)), 5)
    assert len(later) == 3  # the leases ran out: their workers are taken for dead


def test_a_claim_lost_to_another_worker_fails_its_commit(life: Lifecycle) -> None:
    life.policy(life.create().id)
    now = NOW + timedelta(days=1)
    slow, fast = life.db(), life.db()
    assert len(slow.work.claim_rotations(lease("slow", now), 5)) == 1
    assert len(fast.work.claim_rotations(lease("fast", now), 5)) == 1
    fast.commit()
    with pytest.raises(Exception, match="claimed by another worker"):
        slow.commit()


def test_a_worker_that_dies_mid_rotation_leaves_nothing_half_done(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.clock.set(NOW + timedelta(days=1))

    def die(target) -> None:
        raise Crash

    life.rotator.on_apply = die
    with pytest.raises(Crash):
        life.worker("doomed").run_once()
    assert life.states(secret.id)[-1] == (2, "enabled", "pending")
    assert life.read(secret.id) == FIRST  # the current value stays served
    life.rotator.on_apply = None

    survivor = life.worker("survivor")
    assert survivor.run_once().rotated == 0  # the dead worker's claim holds until its lease ends
    life.clock.advance(timedelta(minutes=10, seconds=1))
    assert survivor.run_once().rotated == 1

    assert life.states(secret.id) == [
        (1, "enabled", "previous"),
        (2, "destroyed", None),
        (3, "enabled", "current"),
    ]
    rotations = [a for a in life.audited() if a[0] == "secret.rotate"]
    assert rotations == [("secret.rotate", "success", None)]
    assert life.event_types().count("secret.rotated") == 1
    assert life.read(secret.id) == b"rotated-2"


# -- pruning --------------------------------------------------------------------------------


def test_versions_beyond_max_versions_lose_their_values_oldest_first(life: Lifecycle) -> None:
    secret = life.create(max_versions=3)
    write(life, secret.id, b"v2", b"v3", b"v4", b"v5")
    first_two = [life.versions.get_version(ALICE, secret.id, n).locator for n in (1, 2)]

    with recorded(life.db) as events:
        assert life.worker().run_once().pruned == 1

    assert [state for _, state, _ in life.states(secret.id)] == [
        "destroyed",
        "destroyed",
        "enabled",
        "enabled",
        "enabled",
    ]
    assert not set(first_two) & set(life.backend.values)
    assert [(e.action, e.details) for e in events if e.action == "worker.prune"] == [
        ("worker.prune", {"versions": [1, 2]})
    ]
    assert life.read(secret.id) == b"v5" and life.read(secret.id, 3) == b"v3"
    assert life.worker().run_once().pruned == 0


def test_the_service_default_applies_without_a_max_versions(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, b"v2", b"v3")
    life.worker(default_max_versions=2).run_once()
    assert [state for _, state, _ in life.states(secret.id)] == ["destroyed", "enabled", "enabled"]


def test_pruning_spares_a_version_in_its_grace_period(life: Lifecycle) -> None:
    secret = life.create(max_versions=1)
    life.rotation.rotate(ALICE, secret.id, SecretValue(b"v2"))
    worker = life.worker()

    assert worker.run_once().pruned == 0
    assert life.read(secret.id, 1) == FIRST

    life.clock.advance(timedelta(hours=6))  # the grace period ends: disabled, then pruned
    report = worker.run_once()
    assert (report.grace_ended, report.pruned) == (1, 1)
    assert life.states(secret.id) == [(1, "destroyed", "previous"), (2, "enabled", "current")]


def test_a_prune_with_the_backend_down_is_finished_by_a_later_pass(life: Lifecycle) -> None:
    secret = life.create(max_versions=1)
    write(life, secret.id, b"v2")
    life.backend.fail_next_destroy = True

    assert life.worker().run_once().failed == 1
    assert life.states(secret.id)[0] == (1, "enabled", "previous")

    life.clock.advance(timedelta(minutes=11))  # the failed job's claim has run out
    assert life.worker().run_once().pruned == 1
    assert life.states(secret.id)[0] == (1, "destroyed", "previous")


# -- retention purges -----------------------------------------------------------------------


def test_what_outlived_its_retention_window_is_purged(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, b"v2")
    life.secrets.delete_secret(ALICE, secret.id)
    kept = life.create(name="KEPT")
    life.secrets.delete_secret(ALICE, kept.id)
    life.secrets.restore_secret(ALICE, kept.id)
    worker = life.worker()

    life.clock.set(NOW + timedelta(days=30) - timedelta(microseconds=1))
    assert worker.run_once().purged == 0

    life.clock.set(NOW + timedelta(days=30))
    assert worker.run_once().purged == 1

    with pytest.raises(NotFound):
        life.secrets.get_secret(ALICE, secret.id, include_deleted=True)
    assert all(stored.key.secret_id != secret.id for stored in life.backend.values.values())
    assert life.read(kept.id) == FIRST
    purge = [e for e in life.db.database.audit_events() if e.action == "secret.purge"]
    assert [(e.actor, e.outcome) for e in purge] == [("worker", "success")]
    assert life.event_types()[-1] == "secret.purged"


def test_the_retention_window_is_configurable() -> None:
    life = make_lifecycle(policy=SecretPolicy(retention_days=7))
    secret = life.create()
    life.secrets.delete_secret(ALICE, secret.id)
    life.clock.set(NOW + timedelta(days=7))
    assert life.worker().run_once().purged == 1


def test_personal_secrets_are_purged_too(life: Lifecycle) -> None:
    """Nobody but its owner may touch a personal secret; the worker carries out the retention
    the owner's delete started, as the system, and never reads a value."""
    carol = Principal("user:carol", "user")
    personal = ScopeRef(ScopeType.USER, "carol")
    secret = life.create(actor=carol, scope=personal)
    life.secrets.delete_secret(carol, secret.id)
    life.clock.set(NOW + timedelta(days=30))
    assert life.worker().run_once().purged == 1
    from core.worker import WORKER

    with pytest.raises(Exception, match="may not read value"):
        life.reads.read_value(WORKER, life.create(scope=personal, actor=carol).id)


def test_a_purge_with_the_backend_down_is_tried_again_when_its_claim_runs_out(
    life: Lifecycle,
) -> None:
    secret = life.create()
    life.secrets.delete_secret(ALICE, secret.id)
    life.clock.set(NOW + timedelta(days=30))
    life.backend.down = True
    assert life.worker().run_once().failed == 1
    life.backend.down = False
    assert life.worker().run_once().purged == 0  # claimed still: a natural backoff
    life.clock.advance(timedelta(minutes=10, seconds=1))
    assert life.worker().run_once().purged == 1


# -- event delivery -------------------------------------------------------------------------


def test_the_worker_delivers_every_queued_event_once(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, b"v2")

    with recorded(life.db) as events:
        report = life.worker().run_once()

    assert report.delivered == 4  # two events, two subscribers
    assert sorted((m.type, m.target) for m in life.publisher.delivered) == [
        ("secret.created", "audit-log"),
        ("secret.created", "ci"),
        ("secret.updated", "audit-log"),
        ("secret.updated", "ci"),
    ]
    assert all(m.delivered_at == NOW for m in life.db.database.outbox_messages())
    assert [(e.action, e.details) for e in events] == [
        ("worker.deliver_events", {"delivered": 4, "failed": 0, "pruned": 0})
    ]
    assert life.worker().run_once().delivered == 0
    assert FIRST not in repr([m.payload for m in life.publisher.delivered]).encode()


def test_failed_deliveries_back_off_then_give_up() -> None:
    life = make_lifecycle(delivery=DeliveryPolicy(max_attempts=3), subscribers=("ops",))
    life.create()
    life.publisher.down = True
    worker = life.worker()

    def message():
        [only] = life.db.database.outbox_messages()
        return only

    worker.run_once()
    assert (message().attempts, message().next_attempt_at) == (1, NOW + timedelta(seconds=30))
    assert message().last_error == "subscriber 'ops' answered HTTP 503"
    life.clock.advance(timedelta(seconds=30))
    worker.run_once()
    assert (message().attempts, message().next_attempt_at) == (2, NOW + timedelta(seconds=90))
    life.clock.advance(timedelta(seconds=60))
    worker.run_once()
    assert (message().attempts, message().next_attempt_at) == (3, None)  # given up
    life.publisher.down = False
    life.clock.advance(timedelta(days=1))
    assert worker.run_once().delivered == 0 and life.publisher.delivered == []


def test_a_delivery_that_recovers_is_delivered_and_later_pruned(life: Lifecycle) -> None:
    life.create()
    life.publisher.down = True
    life.worker().run_once()
    life.publisher.down = False
    life.clock.advance(timedelta(seconds=30))
    assert life.worker().run_once().delivered == 2
    life.clock.advance(timedelta(days=7, seconds=1))
    life.create(name="OTHER")
    life.worker().run_once()
    assert {m.payload["secret"]["name"] for m in life.db.database.outbox_messages()} == {"OTHER"}


def test_without_subscribers_no_event_is_queued() -> None:
    life = make_lifecycle(subscribers=())
    life.create()
    assert life.db.database.outbox_messages() == []


def test_an_admin_role_is_what_purges_by_hand(life: Lifecycle) -> None:
    """The worker's system principal is not a role anyone can be granted."""
    assert {role.value for role in Role} == {"viewer", "reader", "editor", "admin", "auditor"}


# -- heartbeats and status ------------------------------------------------------------------


class FakeWorkerRegistry(WorkerRegistry):
    """The heartbeat rows in memory; `beats` keeps every one written, `down` refuses them."""

    def __init__(self) -> None:
        self.rows: dict[str, WorkerRecord] = {}
        self.beats: list[WorkerRecord] = []
        self.down = False
        self.waiting = Backlog(outbox_pending=3, outbox_given_up=1, jobs_queued=1, rotations_due=2)

    def beat(self, record: WorkerRecord) -> None:
        if self.down:
            raise ConnectionError("the database is away")
        self.rows[record.id] = record
        self.beats.append(record)

    def remove(self, worker_id: str) -> None:
        self.rows.pop(worker_id, None)

    def forget_silent_since(self, moment: datetime) -> int:
        silent = [key for key, row in self.rows.items() if row.last_heartbeat_at < moment]
        for key in silent:
            del self.rows[key]
        return len(silent)

    def workers(self) -> list[WorkerRecord]:
        return sorted(self.rows.values(), key=lambda row: row.last_heartbeat_at, reverse=True)

    def backlog(self, now: datetime) -> Backlog:
        return self.waiting


def beating_worker(
    life: Lifecycle,
    registry: WorkerRegistry,
    migrations: MigrationService | None = None,
    worker_id: str = "host-a:4242:0001",
) -> Worker:
    audit = make_audit_trail(life.db, life.clock, changes=life.feed)
    return Worker(
        life.db,
        life.clock,
        life.registry,
        life.secrets,
        life.rotation,
        life.delivery,
        life.feed,
        audit,
        worker_id,
        migrations=migrations,
        registry=registry,
        host="host-a",
        pid=4242,
    )


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_heartbeat_names_the_job_at_hand_and_goes_when_the_worker_stops(
    life: Lifecycle,
) -> None:
    registry = FakeWorkerRegistry()
    registry.rows["dead:1:x"] = WorkerRecord("dead:1:x", "dead", 1, NOW, NOW - timedelta(days=2))
    secret = life.create()
    life.policy(secret.id)
    life.clock.advance(timedelta(days=1))
    rotating = f"rotation secret:{secret.id}"
    seen_mid_job: list[bool] = []
    # The rotation waits in its rotator until a heartbeat has reported it: the heartbeat is
    # written by a thread of its own, not between jobs.
    life.rotator.on_apply = lambda _target: seen_mid_job.append(
        wait_for(lambda: any(beat.current_job == rotating for beat in registry.beats))
    )
    worker = beating_worker(life, registry)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(0.02, stop))
    running.start()
    try:
        assert wait_for(lambda: bool(seen_mid_job) and registry.beats[-1].current_job is None)
        assert "dead:1:x" not in registry.rows  # silent for a day: forgotten at start
        row = registry.rows[worker.id]
        assert (row.host, row.pid, row.started_at, row.last_heartbeat_at) == (
            "host-a",
            4242,
            NOW + timedelta(days=1),
            NOW + timedelta(days=1),
        )
    finally:
        stop.set()
        running.join(10)
    assert seen_mid_job == [True]
    assert life.states(secret.id)[-1][0] == 2  # the rotation went through
    assert registry.rows == {}  # a worker that stops removes its row


def test_a_heartbeat_that_cannot_be_written_does_not_stop_the_jobs(life: Lifecycle) -> None:
    registry = FakeWorkerRegistry()
    registry.down = True
    secret = life.create()
    life.policy(secret.id)
    life.clock.advance(timedelta(days=1))
    worker = beating_worker(life, registry)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(0.02, stop))
    running.start()
    try:
        assert wait_for(lambda: bool(life.rotator.applied))  # (the fakes are not shared)
        registry.down = False  # the database is back: so is the heartbeat
        assert wait_for(lambda: worker.id in registry.rows)
    finally:
        stop.set()
        running.join(10)
    assert life.states(secret.id)[-1][0] == 2


def start_migration(life: Lifecycle, vault: InMemoryBackend) -> MigrationService:
    """A migration from the lifecycle's backend to `vault`, started where both are configured."""
    life.create()
    both = BackendRegistry({life.backend.name: life.backend, "vault": vault}, life.backend.name)
    service = migration_service(life, both)
    service.start(ALICE, MigrationRequest(life.backend.name, "vault", PROJECT))
    return service


def migration_service(life: Lifecycle, backends: BackendRegistry) -> MigrationService:
    audit = make_audit_trail(life.db, life.clock, changes=life.feed)
    checksum = ValueChecksum(CHECKSUM_KEY)
    return MigrationService(life.db, backends, life.clock, checksum, SecretPolicy(), audit)


def test_a_worker_without_a_backend_a_migration_needs_releases_it_saying_why(
    life: Lifecycle,
) -> None:
    vault = InMemoryBackend("vault")
    capable = start_migration(life, vault)
    lacking = migration_service(life, life.registry)  # configured without "vault"
    worker = beating_worker(life, FakeWorkerRegistry(), migrations=lacking)

    report = worker.run_once()

    assert (report.migrations, report.failed) == (0, 1)
    [job] = life.db().jobs.unfinished("migration")
    assert job.state == "pending" and job.lease_owner is None and job.lease_until is None
    assert job.last_error == (
        f"{worker.id} has no backend 'vault' configured: the migration is left to a worker (or "
        "`secretctl migrate --resume`) configured with both"
    )
    with pytest.raises(ConfigurationError, match="no backend 'vault'"):
        lacking.run(job.id, "cli")  # `secretctl migrate --resume` on such a machine: the same

    finished = capable.run_due("worker-with-vault")  # at once: no lease to wait out
    assert finished is not None and finished.state == "succeeded" and finished.last_error is None
    assert len(vault.values) == 1


def test_the_status_shows_each_worker_and_the_backlog_to_admins_only(life: Lifecycle) -> None:
    registry = FakeWorkerRegistry()
    registry.beat(WorkerRecord("a:1:x", "a", 1, NOW, NOW - timedelta(seconds=5), "delivery"))
    registry.beat(WorkerRecord("b:2:y", "b", 2, NOW, NOW - timedelta(minutes=3)))
    audit = make_audit_trail(life.db, life.clock, changes=life.feed)
    service = WorkerStatusService(life.db, registry, life.clock, audit)

    status = service.status(ALICE)

    assert [(s.record.id, s.silent_for, s.alive) for s in status.workers] == [
        ("a:1:x", timedelta(seconds=5), True),
        ("b:2:y", timedelta(minutes=3), False),
    ]
    assert (status.last_heartbeat_age, status.alive) == (timedelta(seconds=5), 1)
    assert status.backlog == registry.waiting
    with pytest.raises(Forbidden):
        service.status(VERA)  # a viewer
    assert [e[:2] for e in life.audited() if e[0] == "worker.status"] == [
        ("worker.status", "success"),
        ("worker.status", "denied"),
    ]
    registry.rows.clear()
    assert service.summary().last_heartbeat_age is None  # no worker: nothing to date
