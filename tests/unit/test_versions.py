"""Versions on the fakes: stage labels, disable / enable / destroy, rollback, per-version
validity, with a controllable clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.domain.errors import (
    BackendUnavailable,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    NotYetValid,
    PreconditionFailed,
    VersionUnavailable,
)
from core.domain.secrets import VersionState
from core.domain.values import Principal, SecretValue
from tests.fakes import recorded
from tests.unit.lifecycle_support import ALICE, BOB, FIRST, NOW, VERA, Lifecycle, make_lifecycle

SECOND = b"second-value-2e1d"
THIRD = b"third-value-3d2c"


@pytest.fixture
def life() -> Lifecycle:
    return make_lifecycle()


def write(life: Lifecycle, secret_id, value: bytes, **options) -> None:
    life.writes.write_value(ALICE, secret_id, SecretValue(value), **options)


def assert_no_orphans(life: Lifecycle) -> None:
    """Every stored value has a version row that is not destroyed, and the reverse."""
    rows = {
        row.locator
        for row in life.db.database.all_versions()
        if row.state is not VersionState.DESTROYED
    }
    assert set(life.backend.values) == rows


# -- stage labels ---------------------------------------------------------------------------


def test_stage_labels_follow_the_writes(life: Lifecycle) -> None:
    secret = life.create()
    assert life.states(secret.id) == [(1, "enabled", "current")]

    write(life, secret.id, SECOND)
    write(life, secret.id, THIRD)

    assert life.states(secret.id) == [
        (1, "enabled", None),
        (2, "enabled", "previous"),
        (3, "enabled", "current"),
    ]
    stored = life.secrets.get_secret(ALICE, secret.id)
    assert (stored.current_version, stored.previous_version, stored.latest_version) == (3, 2, 3)
    assert life.versions.get_version(ALICE, secret.id, 2).stage.value == "previous"


# -- disable and enable ---------------------------------------------------------------------


def test_a_disabled_version_is_not_served_until_enabled_again(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)

    updated, record = life.versions.disable(ALICE, secret.id, 1, expected_revision=2)

    assert record.state is VersionState.DISABLED and updated.revision == 3
    with pytest.raises(VersionUnavailable) as refused:
        life.read(secret.id, 1)
    assert refused.value.details == {"version": 1, "state": "disabled"}
    assert life.read(secret.id) == SECOND  # the current one is untouched
    assert life.versions.get_version(ALICE, secret.id, 1).state is VersionState.DISABLED

    _, record = life.versions.enable(ALICE, secret.id, 1)
    assert record.state is VersionState.ENABLED and life.read(secret.id, 1) == FIRST
    assert life.secrets.get_secret(ALICE, secret.id).revision == 4


def test_a_state_change_with_a_stale_revision_changes_nothing(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)

    with pytest.raises(PreconditionFailed) as refused:
        life.versions.disable(ALICE, secret.id, 1, expected_revision=1)

    assert refused.value.details == {"revision": 2}
    assert life.states(secret.id)[0] == (1, "enabled", "previous")


def test_a_state_change_without_if_match_retries_after_losing_a_race(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)
    life.db.database.fail_next_update(PreconditionFailed("moved on"))

    _, record = life.versions.disable(ALICE, secret.id, 1)

    assert record.state is VersionState.DISABLED


@pytest.mark.parametrize("operation", ["disable", "destroy"])
def test_the_current_version_cannot_be_disabled_or_destroyed(
    life: Lifecycle, operation: str
) -> None:
    secret = life.create()

    with pytest.raises(Conflict) as refused:
        getattr(life.versions, operation)(ALICE, secret.id, 1)

    assert refused.value.details == {"version": 1, "stage": "current"}
    assert life.read(secret.id) == FIRST


def test_unknown_versions_and_secrets(life: Lifecycle) -> None:
    secret = life.create()
    with pytest.raises(NotFound, match="no version 9"):
        life.versions.disable(ALICE, secret.id, 9)
    with pytest.raises(NotFound):
        life.versions.enable(ALICE, secret.id.__class__(int=7), 1)


def test_who_may_change_a_versions_state(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)

    with recorded(life.db) as events:
        with pytest.raises(Forbidden):
            life.versions.disable(VERA, secret.id, 1)
        with pytest.raises(NotFound):
            life.versions.disable(Principal("user:mallory", "user"), secret.id, 1)
    life.versions.disable(BOB, secret.id, 1)  # an editor may

    assert [(e.action, e.outcome) for e in events] == [
        ("secret.version.disable", "denied"),
        ("secret.version.disable", "not_found"),
    ]


# -- destroy --------------------------------------------------------------------------------


def test_destroy_removes_the_value_for_good_and_keeps_the_row(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)
    first = life.versions.get_version(ALICE, secret.id, 1)

    _, record = life.versions.destroy(ALICE, secret.id, 1)

    assert record.state is VersionState.DESTROYED
    assert first.locator not in life.backend.values and first.locator in life.backend.destroyed
    assert [v for v, *_ in life.states(secret.id)] == [1, 2]  # gapless, the row stays
    with pytest.raises(VersionUnavailable, match="destroyed"):
        life.read(secret.id, 1)
    with pytest.raises(Conflict, match="destroyed"):
        life.versions.enable(ALICE, secret.id, 1)
    life.versions.destroy(ALICE, secret.id, 1)  # again: nothing left to do, and no error
    assert_no_orphans(life)


def test_destroying_a_version_takes_an_admin_as_a_purge_does(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)

    with pytest.raises(Forbidden):  # an editor disables, but destroys nothing for good
        life.versions.destroy(BOB, secret.id, 1)
    assert life.read(secret.id, 1) == FIRST
    assert life.backend.destroyed == []
    life.versions.disable(BOB, secret.id, 1)
    life.versions.destroy(ALICE, secret.id, 1)
    assert life.states(secret.id)[0][:2] == (1, "destroyed")


def test_a_destroy_with_the_backend_down_changes_nothing_and_can_be_redone(
    life: Lifecycle,
) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)
    life.backend.fail_next_destroy = True

    with pytest.raises(BackendUnavailable):
        life.versions.destroy(ALICE, secret.id, 1)
    assert life.states(secret.id)[0] == (1, "enabled", "previous")
    assert life.read(secret.id, 1) == FIRST

    life.versions.destroy(ALICE, secret.id, 1)
    assert life.states(secret.id)[0] == (1, "destroyed", "previous")


# -- rollback -------------------------------------------------------------------------------


def test_rollback_makes_an_old_value_current_as_a_new_version(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)
    write(life, secret.id, THIRD)
    life.versions.disable(ALICE, secret.id, 1)  # a disabled version can still be rolled back to

    with recorded(life.db) as events:
        rolled = life.writes.rollback(ALICE, secret.id, 1, expected_revision=4)

    assert (rolled.current_version, rolled.previous_version, rolled.revision) == (4, 3, 5)
    assert life.read(secret.id) == FIRST
    assert [life.read(secret.id, n) for n in (2, 3)] == [SECOND, THIRD]
    [event] = events
    assert (event.action, event.version, event.details["from_version"]) == (
        "secret.rollback",
        4,
        1,
    )
    assert event.details["value_hmac"] == life.versions.get_version(ALICE, secret.id, 1).checksum


def test_rollback_to_a_destroyed_version_is_refused(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)
    life.versions.destroy(ALICE, secret.id, 1)

    with pytest.raises(VersionUnavailable, match="destroyed"):
        life.writes.rollback(ALICE, secret.id, 1)
    assert life.secrets.get_secret(ALICE, secret.id).current_version == 2


def test_rollback_with_a_stale_revision_stores_nothing(life: Lifecycle) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)

    with pytest.raises(PreconditionFailed):
        life.writes.rollback(ALICE, secret.id, 1, expected_revision=1)

    assert [v for v, *_ in life.states(secret.id)] == [1, 2]
    assert_no_orphans(life)


# -- per-version validity -------------------------------------------------------------------


def test_a_version_is_served_from_not_before_until_expires_at(life: Lifecycle) -> None:
    secret = life.create()
    starts, ends = NOW + timedelta(hours=1), NOW + timedelta(days=2)
    write(life, secret.id, SECOND, not_before=starts, expires_at=ends)

    with pytest.raises(NotYetValid) as early:
        life.read(secret.id)
    assert early.value.details == {"not_before": starts.isoformat()}
    assert life.read(secret.id, 1) == FIRST  # another version is not affected

    life.clock.set(starts)
    assert life.read(secret.id) == SECOND
    life.clock.set(ends - timedelta(microseconds=1))
    assert life.read(secret.id) == SECOND
    life.clock.set(ends)
    with pytest.raises(Expired) as late:
        life.read(secret.id)
    assert late.value.details == {"expires_at": ends.isoformat()}
    assert life.versions.get_version(ALICE, secret.id, 2).expires_at == ends  # metadata still is


def test_a_version_validity_needs_a_time_zone_and_an_order(life: Lifecycle) -> None:
    secret = life.create()
    with pytest.raises(InvalidInput, match="not_before must be earlier"):
        write(life, secret.id, SECOND, not_before=NOW, expires_at=NOW)
    with pytest.raises(InvalidInput, match="time zone"):
        write(life, secret.id, SECOND, expires_at=NOW.replace(tzinfo=None))
    assert [v for v, *_ in life.states(secret.id)] == [1]


# -- events ---------------------------------------------------------------------------------


def test_every_change_queues_an_event_for_every_subscriber_in_its_transaction(
    life: Lifecycle,
) -> None:
    secret = life.create()
    write(life, secret.id, SECOND)
    life.versions.disable(ALICE, secret.id, 1)
    life.writes.rollback(ALICE, secret.id, 2)
    with pytest.raises(Forbidden):
        life.versions.enable(VERA, secret.id, 1)  # refused: no event
    life.backend.fail_next_put = True
    with pytest.raises(BackendUnavailable):
        write(life, secret.id, THIRD)  # failed: no event
    life.db.database.fail_next_commit(RuntimeError("the database went away"))
    with pytest.raises(RuntimeError):
        life.versions.enable(ALICE, secret.id, 1)  # rolled back: no event

    messages = life.db.database.outbox_messages()
    assert {m.target for m in messages} == {"audit-log", "ci"}
    assert [(m.type, m.payload.get("change"), m.payload["version"]) for m in life.events()] == [
        ("secret.created", None, 1),
        ("secret.updated", "secret.write_value", 2),
        ("secret.updated", "secret.version.disable", 1),
        ("secret.updated", "secret.rollback", 3),
    ]
    first = life.events()[0].payload
    assert first["secret"] == {
        "id": str(secret.id),
        "scope": "project/p-42",
        "name": "DB_PASSWORD",
        "environment": None,
    }
    assert (first["actor"], first["time"]) == ("user:alice", NOW.isoformat())
    every_payload = repr([m.payload for m in messages]).encode()
    for value in (FIRST, SECOND, THIRD):
        assert value not in every_payload
    assert "hmac" not in every_payload.decode()
