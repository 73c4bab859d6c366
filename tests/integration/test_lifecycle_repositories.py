"""Lifecycle on real SQLite and PostgreSQL: stage labels, version states, rotation policies, the
outbox, the worker's claims, and the worker itself with a fixed clock — the SQL due conditions
must say what `core.worker`'s rules say, or a pass would never end or miss a job."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text

from adapters.db.tables import audit_events, outbox, secrets, versions
from adapters.db.uow import SqlUnitOfWork
from core.domain.access import Role, RoleBinding
from core.domain.events import OutboxMessage
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.secrets import Stage, VersionState
from core.domain.values import ScopeRef, ScopeType, SecretValue
from core.domain.work import ExpiryNotice, Lease
from tests.unit.lifecycle_support import ALICE, FIRST, GLOBAL, NOW, PROJECT, Lifecycle, wire

ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")


@pytest.fixture
def life(engine: Engine) -> Lifecycle:
    """The lifecycle use cases on the SQL units of work: acme > p-42, Alice an admin."""
    with SqlUnitOfWork(engine) as uow:
        acme = uow.scopes.add(ACME, uow.scopes.get(GLOBAL))
        uow.scopes.add(PROJECT, acme)
        uow.bindings.add(
            RoleBinding(uuid.uuid4(), ALICE.id, Role.ADMIN, GLOBAL, "/1/", NOW, "user:setup")
        )
        uow.commit()
    return wire(functools.partial(SqlUnitOfWork, engine))


def outbox_types(engine: Engine, target: str = "audit-log") -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(outbox.c.type)
            .where(outbox.c.target == target)
            .order_by(outbox.c.created_at, outbox.c.type)
        )
        return list(rows.scalars())


def actions(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(audit_events.c.action, audit_events.c.outcome).order_by(audit_events.c.seq)
        )
        return [tuple(row) for row in rows]


def lease(worker: str, now=NOW, minutes: int = 10) -> Lease:
    return Lease(worker, now, now + timedelta(minutes=minutes))


# -- versions and stages --------------------------------------------------------------------


def test_stage_labels_version_states_and_validity_round_trip(life: Lifecycle, engine) -> None:
    secret = life.create()
    life.writes.write_value(
        ALICE,
        secret.id,
        SecretValue(b"v2"),
        not_before=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=9),
    )
    life.versions.disable(ALICE, secret.id, 1)

    with SqlUnitOfWork(engine) as uow:
        first, second = uow.secrets.list_versions(secret.id)
        stored = uow.secrets.get(secret.id)
        assert uow.secrets.get_version(secret.id, 2).stage is Stage.CURRENT
    assert (first.state, first.stage, second.stage) == (
        VersionState.DISABLED,
        Stage.PREVIOUS,
        Stage.CURRENT,
    )
    assert (second.not_before, second.expires_at) == (
        NOW - timedelta(days=1),
        NOW + timedelta(days=9),
    )
    assert (stored.latest_version, stored.previous_version, stored.pending_version) == (2, 1, None)
    with SqlUnitOfWork(engine) as uow, pytest.raises(Exception, match="no version 7"):
        uow.secrets.update_version(type(first)(secret.id, 7, "memory", "x", "y", NOW, "user:alice"))


# -- rotation policies ----------------------------------------------------------------------


def test_rotation_policies_round_trip_and_finish_their_runs(life: Lifecycle, engine) -> None:
    secret = life.create()
    policy = RotationPolicy(
        secret_id=secret.id,
        rotator="webhook",
        next_run_at=NOW,
        created_at=NOW,
        created_by="user:alice",
        settings={"url": "https://owner.example/rotate", "secret_env": "OWNER_KEY", "length": 40},
        cron="0 3 * * *",
        grace_seconds=600,
    )
    with SqlUnitOfWork(engine) as uow:
        uow.rotations.put(policy)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.rotations.get(secret.id) == policy
        [claimed] = uow.work.claim_rotations(lease("w1"), 10)
        uow.commit()
    assert claimed == policy

    run = RotationRun(secret.id, NOW, "failed", "HTTP 500", NOW + timedelta(hours=1), "w2")
    with SqlUnitOfWork(engine) as uow:
        assert not uow.rotations.finish_run(run)  # w2 holds no claim
        assert uow.rotations.finish_run(RotationRun(secret.id, NOW, "success"))  # manual
        assert uow.rotations.finish_run(
            RotationRun(secret.id, NOW, "failed", "HTTP 500", NOW + timedelta(hours=1), "w1")
        )
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        finished = uow.rotations.get(secret.id)
        assert uow.work.claim_rotations(lease("w3"), 10) == []  # not due before its retry
        due_again = uow.work.claim_rotations(lease("w3", NOW + timedelta(hours=1)), 10)
    assert (finished.last_status, finished.last_error, finished.next_run_at) == (
        "failed",
        "HTTP 500",
        NOW + timedelta(hours=1),
    )
    assert [p.secret_id for p in due_again] == [secret.id]  # released by w1's finish


def test_a_purge_takes_the_policy_with_it(life: Lifecycle, engine) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.secrets.delete_secret(ALICE, secret.id)
    life.secrets.purge_secret(ALICE, secret.id)
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM secret_rotation_policies")).scalar() == 0
        )


# -- the outbox -----------------------------------------------------------------------------


def test_outbox_messages_are_claimed_settled_and_pruned(engine) -> None:
    messages = [
        OutboxMessage(
            id=uuid.uuid4(),
            event_id=uuid.uuid4(),
            type="secret.created",
            target=target,
            payload={"id": "e1", "secret": {"name": "A"}, "version": 1},
            created_at=NOW + timedelta(seconds=n),
            next_attempt_at=NOW,
        )
        for n, target in enumerate(("ops", "ci", "audit"))
    ]
    with SqlUnitOfWork(engine) as uow:
        uow.outbox.add(messages)
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        first = uow.work.claim_deliveries(lease("a"), 2)
        second = uow.work.claim_deliveries(lease("b"), 2)
        uow.commit()
    assert [m.target for m in first] == ["ops", "ci"] and [m.target for m in second] == ["audit"]
    assert first[0] == messages[0]

    delivered = first[0].__class__(**{**first[0].__dict__, "attempts": 1, "delivered_at": NOW})
    with SqlUnitOfWork(engine) as uow:
        uow.outbox.settle(delivered, "b")  # not b's claim: ignored
        assert uow.outbox.get(delivered.id).delivered_at is None
        uow.outbox.settle(delivered, "a")
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.outbox.get(delivered.id).attempts == 1
        assert uow.outbox.prune_delivered(NOW) == 0
        assert uow.outbox.prune_delivered(NOW + timedelta(microseconds=1)) == 1
        uow.commit()


# -- claims ---------------------------------------------------------------------------------


def test_secret_claims_are_exclusive_until_released_or_expired(life: Lifecycle, engine) -> None:
    ids = []
    for n in range(3):
        secret = life.create(name=f"S{n}")
        life.secrets.delete_secret(ALICE, secret.id)
        ids.append(secret.id)
    later = NOW + timedelta(days=30)
    with SqlUnitOfWork(engine) as uow:
        first = uow.work.claim_purges(lease("a", later), 2)
        second = uow.work.claim_purges(lease("b", later), 5)
        uow.work.release(first[0], "b")  # not b's to release
        uow.commit()
    assert len(first) == 2 and len(second) == 1 and set(first + second) == set(ids)
    with SqlUnitOfWork(engine) as uow:
        assert uow.work.claim_purges(lease("c", later), 5) == []
        uow.work.release(first[0], "a")
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.work.claim_purges(lease("c", later), 5) == [first[0]]
        expired = uow.work.claim_purges(lease("d", later + timedelta(minutes=11)), 5)
        uow.commit()
    assert set(expired) == set(ids)


def test_expiry_notices_are_recorded_on_the_secret(life: Lifecycle, engine) -> None:
    secret = life.create(expires_at=NOW + timedelta(days=3))
    notice = ExpiryNotice(NOW + timedelta(days=3), 7)
    with SqlUnitOfWork(engine) as uow:
        assert uow.work.expiry_notice(secret.id) is None
        assert uow.work.claim_expiry_notices(lease("a"), 5, (30, 7, 1)) == [secret.id]
        uow.work.record_expiry_notice(secret.id, notice)
        uow.work.release(secret.id, "a")
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        assert uow.work.expiry_notice(secret.id) == notice
        assert uow.work.claim_expiry_notices(lease("a"), 5, (30, 7, 1)) == []
        assert uow.work.claim_expiry_notices(lease("a", NOW + timedelta(days=2)), 5, (7, 1)) == [
            secret.id
        ]


# -- the worker on SQL ----------------------------------------------------------------------


def test_the_worker_runs_every_job_on_sql(life: Lifecycle, engine) -> None:
    """The same rules as on the fakes: each job is claimed exactly when it is due."""
    expiring = life.create(name="EXPIRING", expires_at=NOW + timedelta(days=10))
    pruned = life.create(name="PRUNED", max_versions=2)
    for value in (b"v2", b"v3", b"v4"):
        life.writes.write_value(ALICE, pruned.id, SecretValue(value))
    rotated = life.create(name="ROTATED")
    life.policy(rotated.id, interval_seconds=3600)
    purged = life.create(name="PURGED")
    life.secrets.delete_secret(ALICE, purged.id)
    worker = life.worker()

    report = worker.run_once()
    assert (report.expiry_notices, report.pruned, report.rotated, report.purged) == (1, 1, 0, 0)
    assert report.failed == 0 and report.delivered > 0
    assert [state for _, state, _ in life.states(pruned.id)] == [
        "destroyed",
        "destroyed",
        "enabled",
        "enabled",
    ]

    life.clock.set(NOW + timedelta(hours=1))
    report = worker.run_once()
    assert (report.expiry_notices, report.pruned, report.rotated, report.purged) == (0, 0, 1, 0)
    assert life.read(rotated.id) == b"rotated-1"

    life.clock.set(NOW + timedelta(hours=7))  # version 1's grace period ended; due again
    report = worker.run_once()
    assert (report.grace_ended, report.rotated) == (1, 1)
    assert life.states(rotated.id) == [
        (1, "disabled", None),
        (2, "enabled", "previous"),
        (3, "enabled", "current"),
    ]
    life.rotation.delete_policy(ALICE, rotated.id)

    life.clock.set(NOW + timedelta(days=3))  # 7 days before EXPIRING expires
    assert worker.run_once().expiry_notices == 1
    life.clock.set(NOW + timedelta(days=10))
    assert worker.run_once().expiry_notices == 1
    life.clock.set(NOW + timedelta(days=30))
    report = worker.run_once()
    assert (report.purged, report.expiry_notices, report.failed) == (1, 0, 0)

    delivered = [m.type for m in life.publisher.delivered if m.target == "audit-log"]
    assert (delivered.count("secret.expiring"), delivered.count("secret.expired")) == (2, 1)
    assert delivered.count("secret.rotated") == 2 and delivered[-1] == "secret.purged"
    assert outbox_types(engine) == ["secret.purged"]  # the rest delivered over a week ago
    assert ("secret.purge", "success") in actions(engine)
    assert life.read(pruned.id, 4) == b"v4" and expiring.expires_at is not None
    with engine.connect() as connection:
        left = connection.execute(
            select(secrets.c.claimed_by).where(secrets.c.claimed_by.is_not(None))
        )
        assert list(left) == []  # every claim released


def test_a_failed_rotation_on_sql_leaves_the_old_value_and_an_event(
    life: Lifecycle, engine
) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.rotator.refuse = "HTTP 502 from the owning system"
    life.clock.set(NOW + timedelta(days=1))

    assert life.worker().run_once().rotated == 0

    assert life.read(secret.id) == FIRST
    assert "secret.rotation_failed" in outbox_types(engine)
    with engine.connect() as connection:
        states = connection.execute(
            select(versions.c.version, versions.c.state).order_by(versions.c.version)
        ).all()
    assert [tuple(row) for row in states] == [(1, "enabled"), (2, "destroyed")]
