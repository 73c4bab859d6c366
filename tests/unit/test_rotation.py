"""Rotation on the fakes: two phases, grace periods, failures that keep the current value,
leftovers of crashed rotations, policies and their schedules, with a controllable clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone

import pytest

from adapters.cron import CroniterSchedule
from core.domain.access import Role
from core.domain.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RotationFailed,
    VersionUnavailable,
)
from core.domain.secrets import VersionState
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.rotation_policies import PolicyDraft, Schedule
from tests.fakes import ScriptedRotator, recorded
from tests.unit.lifecycle_support import (
    ALICE,
    BOB,
    FIRST,
    GLOBAL,
    NOW,
    PROJECT,
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


def rotate(life: Lifecycle, secret_id, value: bytes | None = NEW, *, actor=ALICE, **options):
    given = SecretValue(value) if value is not None else None
    return life.rotation.rotate(actor, secret_id, given, **options)


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
    assert life.versions.get_version(ALICE, secret.id, 1).disable_at == grace_end
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
    assert life.versions.get_version(ALICE, secret.id, 1).disable_at == NOW + timedelta(seconds=60)
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
    assert life.versions.get_version(ALICE, secret.id, 1).disable_at is None
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
    life.writes.write_value(ALICE, secret.id, SecretValue(NEW))
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
    leftover = life.versions.get_version(ALICE, secret.id, 2)
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
    life.rotator.on_apply = lambda target: life.writes.write_value(
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
    assert [life.versions.get_version(ALICE, secret.id, 1).state] == [VersionState.ENABLED]
    assert life.read(secret.id) == FIRST


# -- rotators that call out: who attaches them, where they serve, stale policies ------------

ACME = ScopeRef(ScopeType.ORGANIZATION, "acme")
OTHER = ScopeRef(ScopeType.ORGANIZATION, "other")


class OutboundRotator(ScriptedRotator):
    """A scripted rotator that hands values out of the service, to one of `targets` (a name
    and the scopes it serves), as the webhook rotator does to its configured targets."""

    calls_out = True

    def __init__(self, targets: dict[str, tuple[ScopeRef, ...]]) -> None:
        super().__init__("outbound")
        self.targets = targets

    def check_settings(self, settings) -> None:
        unknown = sorted(set(settings) - {"target"})
        if unknown:
            raise InvalidInput(
                f"rotation settings: unknown {', '.join(unknown)}",
                details={"field": f"settings.{unknown[0]}"},
            )
        if settings.get("target") not in self.targets:
            raise InvalidInput(
                f"rotation settings: target '{settings.get('target')}' is not configured",
                details={"field": "settings.target", "configured": sorted(self.targets)},
            )

    def scopes_served(self, settings) -> tuple[ScopeRef, ...]:
        return self.targets[settings["target"]]


@pytest.fixture
def outbound(life: Lifecycle) -> OutboundRotator:
    life.db.database.add_scope(OTHER, GLOBAL)
    rotator = OutboundRotator({"acme-db": (ACME,), "other-db": (OTHER,), "p-42": (PROJECT,)})
    life.rotators[rotator.name] = rotator
    return rotator


def outbound_policy(target: str = "acme-db") -> PolicyDraft:
    return PolicyDraft("outbound", {"target": target}, interval_seconds=86400)


def test_attaching_a_rotator_that_calls_out_takes_the_admin_role_at_the_scope(
    life: Lifecycle, outbound: OutboundRotator
) -> None:
    secret = life.create()

    with recorded(life.db) as events, pytest.raises(Forbidden, match="admin role") as refused:
        life.rotation.set_policy(BOB, secret.id, outbound_policy("no-such-target"))

    # Refused before the settings are looked at: an editor learns no target's name.
    assert "acme-db" not in refused.value.message
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("secret.rotation_policy.set", "denied", "forbidden")
    ]
    with pytest.raises(Forbidden, match="may not write"):
        life.rotation.set_policy(VERA, secret.id, outbound_policy())  # a viewer
    with pytest.raises(NotFound):
        life.rotation.set_policy(Principal("user:eve", "user"), secret.id, outbound_policy())
    life.rotation.set_policy(BOB, secret.id, PolicyDraft("random", interval_seconds=3600))
    _, policy = life.rotation.set_policy(ALICE, secret.id, outbound_policy())
    assert (policy.rotator, policy.settings) == ("outbound", {"target": "acme-db"})

    rotate(life, secret.id, None, actor=BOB)  # an editor still rotates now, through it

    assert [target.version for target, _ in outbound.applied] == [2]


def test_an_admin_binding_narrowed_to_names_does_not_attach_one(
    life: Lifecycle, outbound: OutboundRotator
) -> None:
    secret = life.create()
    life.db.database.grant("user:nora", Role.ADMIN, PROJECT, name_pattern="DB_*")
    nora = Principal("user:nora", "user")

    with pytest.raises(Forbidden):
        life.rotation.set_policy(nora, secret.id, outbound_policy())

    life.db.database.grant("user:nora", Role.ADMIN, PROJECT)
    life.rotation.set_policy(nora, secret.id, outbound_policy())


def test_a_target_serves_the_scopes_configured_for_it_and_below_them_only(
    life: Lifecycle, outbound: OutboundRotator
) -> None:
    secret = life.create()  # in acme > p-42

    for target in ("acme-db", "p-42"):
        life.rotation.set_policy(ALICE, secret.id, outbound_policy(target))
    with pytest.raises(InvalidInput, match="does not serve scope project/p-42") as refused:
        life.rotation.set_policy(ALICE, secret.id, outbound_policy("other-db"))
    assert refused.value.details == {"field": "settings"}
    with pytest.raises(InvalidInput, match="'nope' is not configured") as unknown:
        life.rotation.set_policy(ALICE, secret.id, outbound_policy("nope"))
    assert unknown.value.details["configured"] == ["acme-db", "other-db", "p-42"]  # to an admin


def test_a_personal_scope_is_served_only_when_it_is_named_itself(
    life: Lifecycle, outbound: OutboundRotator
) -> None:
    mine = ScopeRef(ScopeType.USER, "bob")
    outbound.targets |= {"everywhere": (GLOBAL,), "bobs": (mine,)}
    secret = life.create(actor=BOB, scope=mine)

    with pytest.raises(InvalidInput, match="does not serve scope user/bob"):
        life.rotation.set_policy(BOB, secret.id, outbound_policy("everywhere"))
    life.rotation.set_policy(BOB, secret.id, outbound_policy("bobs"))


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (
            {"url": "http://127.0.0.1:9/x", "secret_env": "SECRETS_DEV_ROOT_TOKEN"},
            "unknown secret_env, url",
        ),
        ({"target": "gone-db"}, "'gone-db' is not configured"),  # removed from the configuration
        ({"target": "other-db"}, "does not serve scope project/p-42 any more"),
    ],
)
def test_a_stored_policy_that_todays_configuration_refuses_fails_its_runs_and_says_why(
    life: Lifecycle, outbound: OutboundRotator, settings: dict, why: str
) -> None:
    """A policy stored before targets existed, or before the operator changed them, is not
    honoured: each run fails before anything is made, stored or sent, and is recorded."""
    secret = life.create()
    life.rotation.set_policy(ALICE, secret.id, outbound_policy())
    with life.db() as uow:
        uow.rotations.put(replace(uow.rotations.get(secret.id), settings=settings))
        uow.commit()

    with recorded(life.db) as events, pytest.raises(RotationFailed, match=why) as failed:
        rotate(life, secret.id, NEW, actor=BOB)

    reason = failed.value.details["reason"]
    assert reason.startswith("the rotation policy cannot run: ") and "127.0.0.1" not in reason
    assert "acme-db" not in reason  # editors and viewers see it: no configured name
    assert outbound.applied == [] and life.states(secret.id) == [(1, "enabled", "current")]
    policy = life.rotation.get_policy(ALICE, secret.id)
    assert (policy.last_status, policy.last_error) == ("failed", reason)
    assert life.events()[-1].type == "secret.rotation_failed"
    assert life.events()[-1].payload["reason"] == reason
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("secret.rotate", "error", "rotation_failed")
    ]

    life.clock.set(NOW + timedelta(days=2))  # the worker runs it: it fails the same way
    assert life.worker().run_once().rotated == 0
    assert life.rotation.get_policy(ALICE, secret.id).last_error == reason
    assert outbound.applied == []
