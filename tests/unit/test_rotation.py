"""Rotation on the fakes: two phases, grace periods, failures that keep the current value,
leftovers of crashed rotations, policies and their schedules, with a controllable clock."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from adapters.cron import CroniterSchedule
from core.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RotationFailed,
    VersionUnavailable,
)
from core.model import VersionState
from core.rotation import PolicyDraft, Schedule
from ports.values import SecretValue
from tests.fakes import recorded
from tests.unit.lifecycle_support import (
    ALICE,
    FIRST,
    NOW,
    VERA,
    Lifecycle,
    make_lifecycle,
)

NEW = b"new-value-from-the-owner-5a6b"
SCHEDULE = Schedule(CroniterSchedule())


class Crash(BaseException):
    """The process dying in the middle of a rotation: nothing catches it."""


@pytest.fixture
def life() -> Lifecycle:
    return make_lifecycle()


def rotate(life: Lifecycle, secret_id, value: bytes | None = NEW, **options):
    given = SecretValue(value) if value is not None else None
    return life.rotation.rotate(ALICE, secret_id, given, **options)


# -- the two phases -------------------------------------------------------------------------


def test_a_rotation_makes_the_new_value_current_and_keeps_the_old_one_for_the_grace_period(
    life: Lifecycle,
) -> None:
    secret = life.create()

    with recorded(life.db) as events:
        rotated = rotate(life, secret.id)

    assert (rotated.current_version, rotated.previous_version, rotated.pending_version) == (
        2,
        1,
        None,
    )
    assert life.read(secret.id) == NEW
    assert life.states(secret.id) == [(1, "enabled", "previous"), (2, "enabled", "current")]
    grace_end = NOW + timedelta(hours=6)  # the service default of these tests
    assert life.secrets.get_version(ALICE, secret.id, 1).disable_at == grace_end
    assert [(e.action, e.outcome, e.version) for e in events] == [
        ("secret.rotate.pending", "success", 2),
        ("secret.rotate", "success", 2),
    ]
    assert events[1].details["previous_version"] == 1
    assert life.event_types() == ["secret.created", "secret.rotated"]

    life.clock.set(grace_end - timedelta(microseconds=1))
    assert life.read(secret.id, 1) == FIRST
    life.clock.set(grace_end)
    with pytest.raises(VersionUnavailable, match="grace period ended") as refused:
        life.read(secret.id, 1)
    assert refused.value.details == {"version": 1, "state": "disabled"}
    assert life.read(secret.id) == NEW


def test_the_new_value_is_pending_while_the_owning_system_is_asked(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    seen = []

    def while_testing(target) -> None:
        seen.append((life.states(secret.id), life.read(secret.id), target.version))

    life.rotator.on_apply = while_testing
    rotate(life, secret.id, None)

    assert seen == [
        ([(1, "enabled", "current"), (2, "enabled", "pending")], FIRST, 2),
    ]
    assert life.read(secret.id, 2) == b"rotated-1"  # a pending value can be read by number
    [(target, value)] = life.rotator.applied
    assert (target.secret_id, target.name, target.scope, value) == (
        secret.id,
        "DB_PASSWORD",
        "project/p-42",
        b"rotated-1",
    )


def test_the_policys_rotator_makes_the_value_and_its_grace_period_applies(
    life: Lifecycle,
) -> None:
    secret = life.create()
    life.policy(secret.id, grace_seconds=60)

    rotate(life, secret.id, None)

    assert life.read(secret.id) == b"rotated-1"
    assert life.secrets.get_version(ALICE, secret.id, 1).disable_at == NOW + timedelta(seconds=60)
    policy = life.rotation.get_policy(ALICE, secret.id)
    assert (policy.last_status, policy.last_run_at, policy.last_error) == ("success", NOW, None)
    # A manual rotation leaves the schedule as it was.
    assert policy.next_run_at == NOW + timedelta(days=1)


def test_without_a_value_or_a_rotator_nothing_is_rotated(life: Lifecycle) -> None:
    secret = life.create()

    with pytest.raises(InvalidInput, match="no rotation policy"):
        rotate(life, secret.id, None)

    assert life.states(secret.id) == [(1, "enabled", "current")]
    assert life.event_types() == ["secret.created"]


# -- failures -------------------------------------------------------------------------------


def test_a_refused_rotation_keeps_the_current_value_and_records_why(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.rotator.refuse = "HTTP 500 from the owning system"

    with recorded(life.db) as events, pytest.raises(RotationFailed) as failed:
        rotate(life, secret.id, None)

    assert failed.value.details == {"reason": "HTTP 500 from the owning system"}
    assert life.read(secret.id) == FIRST
    assert life.states(secret.id) == [(1, "enabled", "current"), (2, "destroyed", None)]
    assert not any(stored.data == b"rotated-1" for stored in life.backend.values.values())
    assert life.secrets.get_version(ALICE, secret.id, 1).disable_at is None
    policy = life.rotation.get_policy(ALICE, secret.id)
    assert (policy.last_status, policy.last_error) == ("failed", "HTTP 500 from the owning system")
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("secret.rotate.pending", "success", None),
        ("secret.rotate.abandon", "success", "rotation_failed"),
        ("secret.rotate", "error", "rotation_failed"),
    ]
    failure = life.events()[-1]
    assert failure.type == "secret.rotation_failed"
    assert (failure.payload["reason"], failure.payload["version"]) == (
        "HTTP 500 from the owning system",
        2,
    )

    life.rotator.refuse = None  # numbering goes on after the abandoned version
    life.secrets.write_value(ALICE, secret.id, SecretValue(NEW))
    assert [n for n, *_ in life.states(secret.id)] == [1, 2, 3]


def test_a_rotation_with_the_backend_down_stores_nothing_and_says_so(life: Lifecycle) -> None:
    secret = life.create()
    life.backend.fail_next_put = True

    with pytest.raises(BackendUnavailable):
        rotate(life, secret.id)

    assert life.states(secret.id) == [(1, "enabled", "current")]
    assert life.event_types() == ["secret.created", "secret.rotation_failed"]
    assert "unavailable" in life.events()[-1].payload["reason"]


def test_a_rotation_with_a_stale_revision_is_refused_before_anything_is_stored(
    life: Lifecycle,
) -> None:
    secret = life.create()

    with pytest.raises(PreconditionFailed):
        rotate(life, secret.id, expected_revision=7)

    assert life.states(secret.id) == [(1, "enabled", "current")] and not life.backend.destroyed
    assert life.event_types() == ["secret.created"]


def test_a_second_rotation_while_one_is_pending_is_refused(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    refused = []

    def rotate_again(target) -> None:
        with pytest.raises(Conflict) as conflict:
            rotate(life, secret.id)
        refused.append(conflict.value.details)

    life.rotator.on_apply = rotate_again
    rotate(life, secret.id, None)

    assert refused == [{"pending_version": 2}]
    assert life.read(secret.id) == b"rotated-1"


def test_a_crashed_rotation_is_discarded_once_it_is_older_than_the_timeout(
    life: Lifecycle,
) -> None:
    secret = life.create()
    life.policy(secret.id)

    def crash(target) -> None:
        raise Crash

    life.rotator.on_apply = crash
    with pytest.raises(Crash):
        rotate(life, secret.id, None)
    leftover = life.secrets.get_version(ALICE, secret.id, 2)
    assert life.states(secret.id) == [(1, "enabled", "current"), (2, "enabled", "pending")]
    life.rotator.on_apply = None

    life.clock.advance(timedelta(minutes=5) - timedelta(seconds=1))  # the default timeout
    with pytest.raises(Conflict, match="being rotated"):
        rotate(life, secret.id)
    life.clock.advance(timedelta(seconds=1))
    rotate(life, secret.id)

    assert life.states(secret.id) == [
        (1, "enabled", "previous"),
        (2, "destroyed", None),
        (3, "enabled", "current"),
    ]
    assert leftover.locator not in life.backend.values
    assert life.read(secret.id) == NEW


def test_a_write_during_the_rotation_does_not_stop_its_promotion(life: Lifecycle) -> None:
    """The owning system accepted the rotated value: that is the one consumers need (as AWS
    Secrets Manager's rotation does, the pending version becomes current regardless)."""
    secret = life.create()
    life.policy(secret.id)
    life.rotator.on_apply = lambda target: life.secrets.write_value(
        ALICE, secret.id, SecretValue(NEW)
    )

    rotated = rotate(life, secret.id, None)

    assert (rotated.current_version, rotated.previous_version) == (2, 3)
    assert life.read(secret.id) == b"rotated-1"


def test_a_secret_deleted_during_its_rotation_is_not_rotated(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.rotator.on_apply = lambda target: life.secrets.delete_secret(ALICE, secret.id)

    with pytest.raises(RotationFailed, match="deleted"):
        rotate(life, secret.id, None)

    life.secrets.restore_secret(ALICE, secret.id)
    assert life.states(secret.id) == [(1, "enabled", "current"), (2, "destroyed", None)]


def test_only_writers_rotate(life: Lifecycle) -> None:
    secret = life.create()
    with pytest.raises(Forbidden):
        life.rotation.rotate(VERA, secret.id, SecretValue(NEW))
    assert life.states(secret.id) == [(1, "enabled", "current")]


# -- policies -------------------------------------------------------------------------------


def test_a_policy_is_set_read_replaced_and_deleted_as_a_write_to_the_secret(
    life: Lifecycle,
) -> None:
    secret = life.create()

    updated, policy = life.rotation.set_policy(
        ALICE,
        secret.id,
        PolicyDraft("random", {"length": 40}, interval_seconds=3600),
        expected_revision=1,
    )

    assert updated.revision == 2
    assert (policy.rotator, policy.settings, policy.next_run_at, policy.grace_seconds) == (
        "random",
        {"length": 40},
        NOW + timedelta(hours=1),
        6 * 3600,
    )
    assert life.rotation.get_policy(VERA, secret.id) == policy  # metadata: viewers see it
    with pytest.raises(PreconditionFailed):
        life.rotation.set_policy(
            ALICE, secret.id, PolicyDraft("random", interval_seconds=60), expected_revision=1
        )
    life.rotation.rotate(ALICE, secret.id)  # the random rotator makes a 40-character value
    assert len(life.read(secret.id)) == 40

    life.clock.advance(timedelta(minutes=10))
    _, replaced = life.rotation.set_policy(
        ALICE, secret.id, PolicyDraft("scripted", cron="0 3 * * *")
    )
    assert replaced.next_run_at == (NOW + timedelta(days=1)).replace(hour=3)
    assert (replaced.last_status, replaced.created_at, replaced.updated_at) == (
        "success",
        NOW,
        NOW + timedelta(minutes=10),
    )

    life.rotation.delete_policy(ALICE, secret.id)
    with pytest.raises(NotFound, match="no rotation policy"):
        life.rotation.get_policy(ALICE, secret.id)
    with pytest.raises(NotFound):
        life.rotation.delete_policy(ALICE, secret.id)


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (PolicyDraft("random"), "cron"),
        (PolicyDraft("random", interval_seconds=60, cron="* * * * *"), "cron"),
        (PolicyDraft("random", interval_seconds=59), "interval_seconds"),
        (PolicyDraft("random", cron="61 * * * *"), "cron"),
        (PolicyDraft("random", cron="0 0 * * * *"), "cron"),  # six fields: seconds are not
        (PolicyDraft("nope", interval_seconds=60), "rotator"),
        (PolicyDraft("random", {"length": 4}, interval_seconds=60), "settings.length"),
        (PolicyDraft("random", {"secret": "x"}, interval_seconds=60), "settings.secret"),
        (PolicyDraft("random", interval_seconds=60, grace_seconds=-1), "grace_seconds"),
    ],
)
def test_invalid_policies_are_refused(life: Lifecycle, draft: PolicyDraft, field: str) -> None:
    secret = life.create()
    with pytest.raises(InvalidInput) as refused:
        life.rotation.set_policy(ALICE, secret.id, draft)
    assert refused.value.details == {"field": field}
    assert life.secrets.get_secret(ALICE, secret.id).revision == 1


def test_only_writers_set_policies(life: Lifecycle) -> None:
    secret = life.create()
    with pytest.raises(Forbidden):
        life.rotation.set_policy(VERA, secret.id, PolicyDraft("random", interval_seconds=60))


@pytest.mark.parametrize(
    ("interval", "cron", "after", "expected"),
    [
        (3600, None, NOW, NOW + timedelta(hours=1)),
        (None, "0 3 * * *", NOW, (NOW + timedelta(days=1)).replace(hour=3)),
        (None, "0 8 * * *", NOW, NOW + timedelta(days=1)),  # strictly after
        (None, "*/15 * * * *", NOW + timedelta(minutes=1), NOW + timedelta(minutes=15)),
        (None, "0 0 1 * *", NOW, NOW.replace(month=7, day=1, hour=0)),
        (None, "30 2 * * 1", NOW, (NOW + timedelta(days=7)).replace(hour=2, minute=30)),
    ],
)
def test_schedules(interval, cron, after, expected) -> None:
    assert SCHEDULE.next_after(interval, cron, after) == expected


def test_the_schedule_runs_in_utc_whatever_the_moments_zone() -> None:
    paris = timezone(timedelta(hours=2))
    moment = NOW.astimezone(paris)  # 10:00 in Paris, 08:00 UTC
    following = SCHEDULE.next_after(None, "0 9 * * *", moment)
    assert following == NOW.replace(hour=9) and following.utcoffset() == timedelta(0)


def test_a_rotation_destroys_nothing_but_its_own_pending_value(life: Lifecycle) -> None:
    secret = life.create()
    life.policy(secret.id)
    life.rotator.refuse = "no"
    with pytest.raises(RotationFailed):
        rotate(life, secret.id, None)
    assert [life.secrets.get_version(ALICE, secret.id, 1).state] == [VersionState.ENABLED]
    assert life.read(secret.id) == FIRST
