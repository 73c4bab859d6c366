"""Migration between backends on fakes: copy, verify, switch, remove on request; the pre-check;
resuming after a crash at each step; concurrent writers; access; no value anywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import UUID

import pytest

from core.backends import BackendRegistry
from core.domain.access import Role
from core.domain.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ValueIntegrityError,
)
from core.domain.jobs import ItemState, JobState
from core.domain.migration import MigrationRequest
from core.domain.secrets import VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue, VersionKey
from core.migration.service import MigrationService
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ReadService, ValueReader
from core.secrets import NewSecret, SecretService
from core.versions import VersionService
from core.writes import WriteService
from ports.storage import BackendCapabilities
from tests.fakes import FakeUnitOfWorkFactory, FixedClock, InMemoryBackend, make_audit_trail

ROOT = Principal(id="root", kind="root", is_root=True)
ALICE = Principal(id="user:alice", kind="user")  # admin of acme
EDDIE = Principal(id="user:eddie", kind="user")  # editor of acme
STRANGER = Principal(id="user:nobody", kind="user")
ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")
CANARY = "canary-value-7f3a9c"


class Crash(BaseException):
    """The process dying at this point (as SIGKILL would: nothing after it runs)."""


@dataclass
class World:
    uows: FakeUnitOfWorkFactory
    clock: FixedClock
    old: InMemoryBackend
    new: InMemoryBackend
    secrets: SecretService
    writes: WriteService
    reads: ReadService
    versions: VersionService
    migrations: MigrationService

    def secret_ids(self) -> list[UUID]:
        return sorted(self.uows().tables.secrets, key=str)

    def rows(self, secret_id: UUID) -> list:
        return self.uows().secrets.list_versions(secret_id)


@pytest.fixture
def world() -> World:
    return make_world(SecretPolicy())


def make_world(migration_policy: SecretPolicy) -> World:
    """The secrets written under the default policy, migrated under `migration_policy`."""
    uows = FakeUnitOfWorkFactory()
    uows.database.add_scope(ACME, ScopeRef.global_scope())
    uows.database.grant("user:alice", Role.ADMIN, ACME)
    uows.database.grant("user:eddie", Role.EDITOR, ACME)
    clock = FixedClock()
    old, new = InMemoryBackend("old"), InMemoryBackend("new")
    registry = BackendRegistry({"old": old, "new": new}, default="old")
    checksum = ValueChecksum(b"k" * 32)
    audit = make_audit_trail(uows, clock)
    policy = SecretPolicy()
    return World(
        uows,
        clock,
        old,
        new,
        SecretService(uows, registry, clock, checksum, policy, audit),
        WriteService(uows, registry, clock, checksum, policy, audit),
        ReadService(uows, ValueReader(registry, clock, checksum), clock, audit),
        VersionService(uows, registry, clock, audit),
        MigrationService(
            uows, registry, clock, checksum, migration_policy, audit, timedelta(minutes=5)
        ),
    )


def value_of(number: int, version: int) -> SecretValue:
    return SecretValue.from_text(f"{CANARY}-{number}-v{version}")


def populate(world: World, count: int = 3, versions: int = 3) -> list[UUID]:
    ids = []
    for number in range(count):
        secret = world.secrets.create_secret(
            ROOT, NewSecret(ACME, f"S{number}"), value_of(number, 1)
        )
        for version in range(2, versions + 1):
            world.writes.write_value(ROOT, secret.id, value_of(number, version))
        ids.append(secret.id)
    return ids


def request(**options) -> MigrationRequest:
    return MigrationRequest("old", "new", ACME, **options)


def migrate(world: World, **options):
    job = world.migrations.start(ALICE, request(**options))
    return world.migrations.run(job.id, "runner-1")


def assert_all_readable_from(world: World, ids: list[UUID], backend: str, versions: int) -> None:
    for number, secret_id in enumerate(ids):
        assert world.uows().secrets.get(secret_id).backend == backend
        for version in range(1, versions + 1):
            read = world.reads.read_value(ROOT, secret_id, version)
            assert read.version.backend == backend
            assert read.value == value_of(number, version)


def stored_keys(backend: InMemoryBackend) -> list[VersionKey]:
    return sorted(
        (v.key for v in backend.values.values()), key=lambda k: (str(k.secret_id), k.version)
    )


def test_all_versions_are_copied_verified_and_switched_keeping_the_source(world: World) -> None:
    ids = populate(world)

    job = migrate(world, all_versions=True)

    assert (job.state, job.total, job.done, job.failed, job.remaining) == ("succeeded", 3, 3, 0, 0)
    assert job.counters["versions_copied"] == 9
    assert_all_readable_from(world, ids, "new", 3)
    assert len(stored_keys(world.new)) == 9  # one copy per version, no strays
    assert len(world.old.values) == 9  # the source copies stay unless asked
    assert all(s.revision > 1 for s in map(world.uows().secrets.get, ids))


def test_delete_source_removes_the_source_copies_only_after_the_switch(world: World) -> None:
    ids = populate(world)
    switched_before_destroy = []
    destroy = world.old.destroy

    def watching_destroy(key: VersionKey, locator: str) -> None:
        switched_before_destroy.append(world.uows().secrets.get(key.secret_id).backend == "new")
        destroy(key, locator)

    world.old.destroy = watching_destroy  # type: ignore[method-assign]
    job = migrate(world, all_versions=True, delete_source=True)

    assert job.counters["sources_removed"] == 9
    assert world.old.values == {}
    assert switched_before_destroy == [True] * 9
    assert_all_readable_from(world, ids, "new", 3)


def test_without_all_versions_only_the_current_one_moves_and_old_ones_stay_readable(
    world: World,
) -> None:
    ids = populate(world, count=1)

    job = migrate(world, delete_source=True)

    assert job.counters["versions_copied"] == 1
    rows = world.rows(ids[0])
    assert [row.backend for row in rows] == ["old", "old", "new"]
    assert world.uows().secrets.get(ids[0]).backend == "new"
    assert len(world.old.values) == 2 and len(world.new.values) == 1
    for version in (1, 2, 3):
        assert world.reads.read_value(ROOT, ids[0], version).value == value_of(0, version)


def test_destroyed_versions_are_not_copied(world: World) -> None:
    ids = populate(world, count=1)
    world.versions.destroy(ROOT, ids[0], 1)

    job = migrate(world, all_versions=True)

    assert job.counters["versions_copied"] == 2
    assert [(r.version, r.backend, r.state) for r in world.rows(ids[0])] == [
        (1, "old", VersionState.DESTROYED),
        (2, "new", VersionState.ENABLED),
        (3, "new", VersionState.ENABLED),
    ]


def test_a_value_too_large_for_the_target_refuses_the_job_before_anything_moves(
    world: World,
) -> None:
    world.new.capabilities = BackendCapabilities(max_value_bytes=30)
    ids = populate(world, count=2, versions=1)
    world.writes.write_value(ROOT, ids[1], SecretValue(b"x" * 31))
    before = [world.rows(secret_id) for secret_id in ids]

    plan = world.migrations.plan(ALICE, request(all_versions=True))
    assert [(m.name, m.version) for m in plan.misfits] == [("S1", 2)]
    assert "limit is 30 bytes" in plan.misfits[0].reason

    job = migrate(world, all_versions=True)

    assert job.state == JobState.REFUSED
    assert [(m["name"], m["version"]) for m in job.report["misfits"]] == [("S1", 2)]
    assert world.new.values == {}
    assert [world.rows(secret_id) for secret_id in ids] == before


def test_a_name_the_name_rules_no_longer_accept_is_reported_before_anything_moves() -> None:
    world = make_world(SecretPolicy(name_pattern=r"^[a-z]+$"))
    populate(world, count=1, versions=1)

    job = migrate(world)

    assert job.state == JobState.REFUSED
    assert job.report["misfits"][0]["name"] == "S0"
    assert "invalid secret name" in job.report["misfits"][0]["reason"]
    assert world.new.values == {}


def test_a_dry_run_moves_nothing_and_starts_no_job(world: World) -> None:
    ids = populate(world, count=2)

    plan = world.migrations.plan(ALICE, request(all_versions=True))

    assert {p.secret_id: p.versions for p in plan.secrets} == {i: (1, 2, 3) for i in ids}
    assert plan.versions == 6 and plan.misfits == ()
    assert world.new.values == {}
    assert world.uows().tables.jobs == {}


def test_the_selector_narrows_the_secrets(world: World) -> None:
    ids = populate(world, count=3, versions=1)

    plan = world.migrations.plan(ALICE, MigrationRequest("old", "new", ACME, prefix="S1"))

    assert [p.secret_id for p in plan.secrets] == [ids[1]]


def test_only_admins_of_the_scope_may_migrate_or_see_migrations(world: World) -> None:
    populate(world, count=1, versions=1)
    with pytest.raises(Forbidden):
        world.migrations.start(EDDIE, request())
    with pytest.raises(NotFound):
        world.migrations.start(STRANGER, request())
    with pytest.raises(NotFound):
        world.migrations.start(ALICE, MigrationRequest("old", "new"))  # global: not hers

    job = world.migrations.start(ALICE, request())

    assert world.migrations.get(ALICE, job.id).id == job.id
    with pytest.raises(Forbidden):
        world.migrations.get(EDDIE, job.id)
    with pytest.raises(NotFound):
        world.migrations.get(STRANGER, job.id)
    assert [j.id for j in world.migrations.list_jobs(ALICE)] == [job.id]
    assert world.migrations.list_jobs(EDDIE) == []


def test_bad_requests_name_what_is_wrong(world: World) -> None:
    with pytest.raises(InvalidInput, match="unknown backend 'nowhere'") as unknown:
        world.migrations.start(ALICE, MigrationRequest("old", "nowhere", ACME))
    assert unknown.value.details["field"] == "to"
    with pytest.raises(InvalidInput, match="same backend"):
        world.migrations.start(ALICE, MigrationRequest("old", "old", ACME))
    with pytest.raises(NotFound, match="no scope"):
        world.migrations.start(ALICE, MigrationRequest("old", "new", ScopeRef(ScopeType.TEAM, "x")))
    world.new.down = True
    with pytest.raises(BackendUnavailable, match="'new'"):
        world.migrations.start(ALICE, request())


def test_one_migration_at_a_time(world: World) -> None:
    populate(world, count=1, versions=1)
    first = world.migrations.start(ALICE, request())
    with pytest.raises(Conflict, match=str(first.id)):
        world.migrations.start(ALICE, request())


def test_one_migration_at_a_time_whose_id_only_its_scopes_admins_learn(world: World) -> None:
    populate(world, count=1, versions=1)
    first = world.migrations.start(ALICE, request())
    other = ScopeRef(ScopeType.ORGANIZATION, "other")
    world.uows.database.add_scope(other, ScopeRef.global_scope())
    world.uows.database.grant("user:bob", Role.ADMIN, other)
    bob = Principal(id="user:bob", kind="user")

    with pytest.raises(Conflict) as caught:  # another tenant: busy, but not with what
        world.migrations.start(bob, MigrationRequest("old", "new", other))
    assert str(first.id) not in caught.value.message and caught.value.details == {}
    with pytest.raises(NotFound):  # no admin there: told nothing at all
        world.migrations.start(STRANGER, MigrationRequest("old", "new", other))
    with pytest.raises(NotFound):
        world.migrations.get(bob, first.id)


def test_a_job_held_by_a_live_runner_is_not_run_twice(world: World) -> None:
    populate(world, count=2, versions=1)
    job = world.migrations.start(ALICE, request())
    world.new.on_put = _crash_at(1)
    with pytest.raises(Crash):
        world.migrations.run(job.id, "runner-1")
    world.new.on_put = None

    with pytest.raises(Conflict, match="runner-1"):
        world.migrations.run(job.id, "runner-2")
    assert world.migrations.run_due("worker-1") is None  # the lease is live

    world.clock.advance(timedelta(minutes=6))
    finished = world.migrations.run_due("worker-1")
    assert finished is not None and finished.state == JobState.SUCCEEDED


def _crash_at(put_number: int):
    puts = []

    def on_put(key: VersionKey) -> None:
        puts.append(key)
        if len(puts) == put_number:
            raise Crash

    return on_put


@pytest.mark.parametrize("crash_at_put", [1, 2, 4, 6])
def test_a_crash_between_put_and_record_is_resumed_without_strays(
    world: World, crash_at_put: int
) -> None:
    ids = populate(world, count=3)
    job = world.migrations.start(ALICE, request(all_versions=True, delete_source=True))
    world.new.on_put = _crash_at(crash_at_put)
    with pytest.raises(Crash):
        world.migrations.run(job.id, "runner-1")
    world.new.on_put = None

    finished = world.migrations.run(job.id, "runner-2", take_over=True)

    assert (finished.state, finished.done, finished.failed) == ("succeeded", 3, 0)
    assert_all_readable_from(world, ids, "new", 3)
    assert len(stored_keys(world.new)) == 9  # nothing left behind by the crash
    assert world.old.values == {}


def test_copies_recorded_before_a_crash_are_verified_not_copied_again(world: World) -> None:
    ids = populate(world, count=2)
    first, second = sorted(ids, key=str)  # the order the job takes them in
    job = world.migrations.start(ALICE, request(all_versions=True))
    world.uows.database.fail_next_update(Crash())  # the first switch dies
    with pytest.raises(Crash):
        world.migrations.run(job.id, "runner-1")
    assert world.uows().secrets.get(first).backend == "old"
    items = world.uows().jobs.items(job.id, first)
    assert [i.state for i in items] == ["pending", "copied", "copied", "copied"]

    puts: list[VersionKey] = []
    world.new.on_put = puts.append
    world.clock.advance(timedelta(minutes=6))
    finished = world.migrations.run(job.id, "runner-2")

    assert finished.state == JobState.SUCCEEDED
    assert {key.secret_id for key in puts} == {second}  # the first secret's copies were reused
    assert_all_readable_from(world, ids, "new", 3)
    assert len(stored_keys(world.new)) == 6


def test_a_crash_after_the_switch_removes_the_source_on_resume_and_copies_nothing(
    world: World,
) -> None:
    ids = populate(world, count=1)
    job = world.migrations.start(ALICE, request(all_versions=True, delete_source=True))
    world.old.fail_next_destroy = True
    with pytest.raises(BackendUnavailable):
        world.migrations.run(job.id, "runner-1")
    stopped = world.uows().jobs.get(job.id)
    assert stopped.state == "running" and "'old'" in stopped.last_error
    assert stopped.lease_owner is None  # released: resumable at once

    puts: list[VersionKey] = []
    world.new.on_put = puts.append
    finished = world.migrations.run(job.id, "runner-2")

    assert puts == []
    assert finished.state == JobState.SUCCEEDED and finished.last_error is None
    assert world.old.values == {}
    assert_all_readable_from(world, ids, "new", 3)


def test_a_version_written_during_the_migration_is_copied_too(world: World) -> None:
    ids = populate(world, count=1, versions=2)
    job = world.migrations.start(ALICE, request(all_versions=True))
    written = []

    def concurrent_writer(key: VersionKey) -> None:
        if not written:
            written.append(world.writes.write_value(ROOT, ids[0], value_of(0, 3)))

    world.new.on_put = concurrent_writer
    finished = world.migrations.run(job.id, "runner-1")

    assert finished.state == JobState.SUCCEEDED
    assert [row.backend for row in world.rows(ids[0])] == ["new", "new", "new"]
    assert_all_readable_from(world, ids, "new", 3)
    assert len(stored_keys(world.new)) == 3


def test_a_secret_that_fails_stays_on_the_source_and_is_reported(world: World) -> None:
    ids = populate(world, count=2, versions=1)
    record = world.rows(ids[0])[0]
    world.old.tamper(record.locator, b"tampered")
    job = world.migrations.start(ALICE, request())
    # The pre-check catches it; were it to pass, the copy would catch it: force the copy.
    jobs = world.uows.database.tables.jobs
    jobs[job.id] = replace(jobs[job.id], state=JobState.RUNNING)

    finished = world.migrations.run(job.id, "runner-1")

    assert (finished.state, finished.done, finished.failed) == ("failed", 1, 1)
    assert finished.report["failures"][0]["secret_id"] == str(ids[0])
    assert "checksum" in finished.report["failures"][0]["reason"]
    assert world.uows().secrets.get(ids[0]).backend == "old"
    assert stored_keys(world.new) == [VersionKey(ids[1], 1)]


def test_a_backend_down_stops_the_job_which_resumes_later(world: World) -> None:
    ids = populate(world, count=2)
    job = world.migrations.start(ALICE, request(all_versions=True))
    world.new.fail_next_put = True
    with pytest.raises(BackendUnavailable):
        world.migrations.run(job.id, "runner-1")

    finished = world.migrations.run(job.id, "runner-1")

    assert finished.state == JobState.SUCCEEDED
    assert_all_readable_from(world, ids, "new", 3)


def test_a_secret_purged_during_the_job_is_skipped(world: World) -> None:
    ids = populate(world, count=2, versions=1)
    job = world.migrations.start(ALICE, request())
    world.secrets.delete_secret(ROOT, ids[0])
    world.secrets.purge_secret(ROOT, ids[0])

    finished = world.migrations.run(job.id, "runner-1")

    assert (finished.state, finished.done) == ("succeeded", 2)
    items = world.uows().jobs.items(job.id, ids[0])
    assert {item.state for item in items} == {ItemState.SKIPPED}


def test_no_value_reaches_the_audit_trail_or_the_job(world: World) -> None:
    populate(world, count=2)
    job = migrate(world, all_versions=True, delete_source=True)

    events = world.uows.database.audit_events()
    migrated = [e for e in events if e.action == "secret.migrate"]
    assert len(migrated) == 2 and all(e.actor == "user:alice" for e in migrated)
    assert {e.action for e in events} >= {
        "migration.start",
        "secret.migrate.remove_source",
        "migration.finish",
    }
    text = json.dumps([e.content() for e in events], default=str) + json.dumps(
        [vars(job), [vars(i) for i in world.uows().jobs.items(job.id)]], default=str
    )
    assert CANARY not in text


def test_recovering_a_crash_never_purges_copies_an_earlier_migration_kept(world: World) -> None:
    ids = populate(world, count=2)
    migrate(world, all_versions=True)  # old -> new, the copies on old kept
    kept = dict(world.old.values)
    back = world.migrations.start(ALICE, MigrationRequest("new", "old", ACME, all_versions=True))
    world.old.on_put = _crash_at(2)
    with pytest.raises(Crash):
        world.migrations.run(back.id, "runner-1")
    world.old.on_put = None

    finished = world.migrations.run(back.id, "runner-2", take_over=True)

    assert finished.state == JobState.SUCCEEDED
    assert world.old.purged == []
    assert all(world.old.values.get(locator) == value for locator, value in kept.items())
    assert len(finished.report["stray_copies"]) == 1  # the put the crash may have left
    assert_all_readable_from(world, ids, "old", 3)


def test_a_source_copy_that_cannot_be_removed_is_reported_and_the_secret_stays_moved(
    world: World,
) -> None:
    ids = populate(world, count=1, versions=1)
    destroy = world.old.destroy

    def refusing(key: VersionKey, locator: str) -> None:
        raise ValueIntegrityError("the store refused to destroy it")

    world.old.destroy = refusing  # type: ignore[method-assign]
    job = migrate(world, delete_source=True)
    world.old.destroy = destroy  # type: ignore[method-assign]

    assert (job.state, job.done, job.failed) == ("failed", 0, 1)
    assert "source copies remain" in job.report["failures"][0]["reason"]
    assert world.reads.read_value(ROOT, ids[0]).version.backend == "new"
    assert len(world.old.values) == 1
