"""Concurrency through the real container (local encrypted backend, audit chain): check-and-set
writers never lose an update, writers without `If-Match` each land (on SQLite and PostgreSQL),
and workers never run a job twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.db.tables import audit_events
from core.domain.errors import Conflict, NotFound, PreconditionFailed
from core.domain.rotation import RotationPolicy
from core.domain.values import Principal, ScopeRef, SecretValue
from core.secrets import MetadataChanges, NewSecret
from core.worker import WorkReport
from entrypoints.config import Settings
from entrypoints.container import Container

ROOT = Principal("root", "root", is_root=True)
WRITERS = 20
UNCHECKED_WRITERS = 50  # without If-Match, each must land
ROUNDS = 5
ROTATIONS = 500
WORKERS = 3


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """PostgreSQL for the tests marked so, else the database of `database_url` (both kinds)."""
    if "database_url" in request.fixturenames:
        url = request.getfixturevalue("database_url")
    else:
        database = request.getfixturevalue("_postgres_test_database")
        database.reset()
        url = database.url
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        keys={"provider": "file", "path": str(tmp_path / "master.key")},
        worker={"poll_seconds": 1.0, "batch_size": 20, "lease_seconds": 600},
    )


@pytest.fixture
def containers(settings: Settings) -> Iterator[Callable[[], Container]]:
    """Containers on one database, each with its own engine and connections (as processes)."""
    made: list[Container] = []

    def make() -> Container:
        made.append(Container(settings=settings))
        return made[-1]

    yield make
    for container in made:
        container.shutdown_resources()


def run_together(count: int, job: Callable[[int], object]) -> list[object]:
    """Run `job(0)` … `job(count - 1)` in threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = job(index)
        except Exception as error:  # returned, for the test to look at
            results[index] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.postgres
def test_twenty_check_and_set_writers_one_winner_per_round_and_no_lost_update(containers):
    container = containers()
    service, writes = container.secret_service(), container.write_service()
    secret = service.create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "CONTENDED"), SecretValue(b"round-start")
    )
    winners = []

    for round_number in range(ROUNDS):
        revision = service.get_secret(ROOT, secret.id).revision

        def write(writer: int, revision: int = revision, round_number: int = round_number):
            value = f"round-{round_number}-writer-{writer}".encode()
            writes.write_value(ROOT, secret.id, SecretValue(value), expected_revision=revision)
            return value

        results = run_together(WRITERS, write)
        won = [result for result in results if isinstance(result, bytes)]
        lost = [result for result in results if isinstance(result, PreconditionFailed)]
        assert (len(won), len(lost)) == (1, WRITERS - 1), results
        winners.append(won[0])

    history = container.version_service().list_versions(ROOT, secret.id)
    assert [record.version for record in history] == list(range(1, ROUNDS + 2))  # gapless
    reads = container.read_service()
    for number, value in enumerate(winners, start=2):
        assert reads.read_value(ROOT, secret.id, number).value.reveal() == value
    assert service.get_secret(ROOT, secret.id).revision == ROUNDS + 1


def writers_of(containers: Callable[[], Container], count: int = 3) -> list[Container]:
    """A few containers on one database, as processes: the writers are spread over them."""
    return [containers() for _ in range(count)]


def test_fifty_writers_without_if_match_each_get_their_own_version(database_url, containers):
    """No 409, no 412, nothing lost: every writer's value lands as a version of its own,
    numbered without gaps, exactly as acknowledged."""
    processes = writers_of(containers)
    secret = (
        processes[0]
        .secret_service()
        .create_secret(ROOT, NewSecret(ScopeRef.global_scope(), "BUSY"), SecretValue(b"v1"))
    )

    def write(writer: int) -> int:
        writes = processes[writer % len(processes)].write_service()
        return writes.write_value(ROOT, secret.id, SecretValue(b"w-%d" % writer)).current_version

    results = run_together(UNCHECKED_WRITERS, write)

    assert all(isinstance(result, int) for result in results), results
    assert sorted(results) == list(range(2, UNCHECKED_WRITERS + 2))  # each its own number
    service, reads = processes[0].secret_service(), processes[0].read_service()
    history = processes[0].version_service().list_versions(ROOT, secret.id)
    assert [record.version for record in history] == list(range(1, UNCHECKED_WRITERS + 2))
    landed = {reads.read_value(ROOT, secret.id, r.version).value.reveal() for r in history[1:]}
    assert landed == {b"w-%d" % n for n in range(UNCHECKED_WRITERS)}
    assert service.get_secret(ROOT, secret.id).revision == UNCHECKED_WRITERS + 1


def test_fifty_changes_without_if_match_each_land_deletes_and_restores_included(
    database_url, containers
):
    """Metadata changes and version state changes race with a delete and then with restores:
    none of them is answered 412 (nobody asked for a check-and-set)."""
    processes = writers_of(containers)
    service = processes[0].secret_service()
    secret = service.create_secret(
        ROOT, NewSecret(ScopeRef.global_scope(), "CHANGED"), SecretValue(b"v1")
    )
    processes[0].write_service().write_value(ROOT, secret.id, SecretValue(b"v2"))

    def change(writer: int) -> object:
        container = processes[writer % len(processes)]
        if writer == UNCHECKED_WRITERS - 1:
            return container.secret_service().delete_secret(ROOT, secret.id)
        if writer % 2:
            versions = container.version_service()
            operation = versions.disable if writer % 4 == 1 else versions.enable
            return operation(ROOT, secret.id, 1)
        changes = MetadataChanges(description=f"writer {writer}")
        return container.secret_service().update_metadata(ROOT, secret.id, changes)

    results = run_together(UNCHECKED_WRITERS, change)

    assert not [r for r in results if isinstance(r, PreconditionFailed | Conflict)], results
    landed = [r for r in results if not isinstance(r, Exception)]
    # after the delete, a change finds no live secret: told so, never "precondition failed"
    assert all(isinstance(r, NotFound) for r in results if isinstance(r, Exception)), results
    deleted = service.get_secret(ROOT, secret.id, include_deleted=True)
    assert deleted.is_deleted and deleted.revision == 2 + len(landed)

    restores = run_together(
        UNCHECKED_WRITERS,
        lambda n: processes[n % len(processes)].secret_service().restore_secret(ROOT, secret.id),
    )
    restored = [r for r in restores if not isinstance(r, Exception)]
    refused = [r for r in restores if isinstance(r, Exception)]
    assert len(restored) == 1, restores
    assert all(isinstance(r, Conflict) and "not deleted" in r.message for r in refused), refused
    assert not service.get_secret(ROOT, secret.id).is_deleted


@pytest.mark.postgres
def test_three_workers_over_500_due_rotations_rotate_each_exactly_once(containers):
    setup = containers()
    service = setup.secret_service()
    created = [
        service.create_secret(
            ROOT, NewSecret(ScopeRef.global_scope(), f"S{n:03d}"), SecretValue(b"v1")
        )
        for n in range(ROTATIONS)
    ]
    due = datetime.now(UTC) - timedelta(minutes=1)
    with setup.unit_of_work() as uow:
        for secret in created:
            uow.rotations.put(
                RotationPolicy(
                    secret_id=secret.id,
                    rotator="random",
                    settings={"length": 24},
                    interval_seconds=86400,
                    grace_seconds=3600,
                    next_run_at=due,
                    created_at=due,
                    created_by="user:setup",
                )
            )
        uow.commit()
    workers = [containers().worker(worker_id=f"worker-{n}") for n in range(WORKERS)]

    reports = run_together(WORKERS, lambda n: workers[n].run_once())

    assert all(isinstance(report, WorkReport) for report in reports), reports
    assert sum(report.rotated for report in reports) == ROTATIONS
    assert sum(report.failed for report in reports) == 0
    assert sum(1 for report in reports if report.rotated) >= 2  # they really shared the work
    with setup.unit_of_work() as uow:
        for secret in created:
            stored = uow.secrets.get(secret.id)
            assert (stored.current_version, stored.previous_version, stored.latest_version) == (
                2,
                1,
                2,
            )
            assert [v.version for v in uow.secrets.list_versions(secret.id)] == [1, 2]
    with setup.engine().connect() as connection:
        rotations = connection.execute(
            select(audit_events.c.resource, audit_events.c.outcome, audit_events.c.actor).where(
                audit_events.c.action == "secret.rotate"
            )
        ).all()
    assert Counter(outcome for _, outcome, _ in rotations) == {"success": ROTATIONS}
    assert Counter(resource for resource, _, _ in rotations) == {
        f"secret:{secret.id}": 1 for secret in created
    }
    assert setup.audit_service().verify(ROOT).broken is None
