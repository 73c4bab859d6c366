"""The secret and its versions are frozen values whose changes are methods spelled once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from core.domain.errors import Expired, NotYetValid, VersionUnavailable
from core.domain.secrets import Secret, SecretVersion, Stage, Validity, VersionState
from core.domain.values import Principal, ScopeRef

NOW = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)
ALICE = Principal("user:alice", "user")
BOB = Principal("user:bob", "user")
SECRET_ID = UUID(int=7)


def secret(**changes: object) -> Secret:
    base = Secret(
        id=SECRET_ID,
        scope=ScopeRef.global_scope(),
        name="DB_PASSWORD",
        backend="local",
        created_at=EARLIER,
        created_by=ALICE.id,
        current_version=2,
        previous_version=1,
        revision=5,
        updated_at=EARLIER,
        updated_by=ALICE.id,
    )
    return dataclasses.replace(base, **changes)


def version(**changes: object) -> SecretVersion:
    base = SecretVersion(SECRET_ID, 2, "local", "loc-2", "sum", EARLIER, ALICE.id)
    return dataclasses.replace(base, **changes)


def test_a_secret_and_a_version_cannot_be_changed_in_place() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        secret().revision = 6  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        version().state = VersionState.DISABLED  # type: ignore[misc]


def test_a_change_is_the_next_revision_by_its_actor_and_leaves_the_original() -> None:
    original = secret()

    changed = original.changed(BOB, NOW, description="rotated by hand")

    assert (changed.revision, changed.updated_at, changed.updated_by) == (6, NOW, BOB.id)
    assert changed.description == "rotated by hand"
    assert (original.revision, original.description) == (5, "")


def test_a_new_version_becomes_current_and_the_current_one_previous() -> None:
    updated = secret(latest_version=3).with_new_version(4, BOB, NOW, expires_at=NOW)

    assert (updated.current_version, updated.previous_version, updated.latest_version) == (4, 2, 4)
    assert updated.stage_of(2) is Stage.PREVIOUS
    assert (updated.revision, updated.updated_by, updated.expires_at) == (6, BOB.id, NOW)


def test_a_rotation_labels_its_version_pending_then_promotes_or_drops_it() -> None:
    pending = secret().with_pending_version(3, BOB, NOW)
    assert (pending.pending_version, pending.latest_version, pending.current_version) == (3, 3, 2)
    assert pending.revision == 6

    promoted = pending.with_promoted_version(3, BOB, NOW)
    assert (promoted.current_version, promoted.previous_version) == (3, 2)
    assert (promoted.pending_version, promoted.latest_version, promoted.revision) == (None, 3, 7)

    dropped = pending.without_pending(BOB, NOW)
    assert (dropped.pending_version, dropped.current_version, dropped.latest_version) == (
        None,
        2,
        3,
    )


def test_a_soft_delete_keeps_the_secret_for_the_retention_and_a_restore_undoes_it() -> None:
    deleted = secret().soft_delete(BOB, NOW, timedelta(days=30))

    assert deleted.is_deleted
    assert (deleted.deleted_at, deleted.purge_after) == (NOW, NOW + timedelta(days=30))
    assert (deleted.revision, deleted.updated_by) == (6, BOB.id)

    restored = deleted.restore(ALICE, NOW)
    assert not restored.is_deleted
    assert (restored.purge_after, restored.revision, restored.updated_by) == (None, 7, ALICE.id)


def test_closing_the_retention_moves_the_revision_but_not_who_changed_it() -> None:
    closed = secret(deleted_at=EARLIER).close_retention(NOW)

    assert (closed.purge_after, closed.revision) == (NOW, 6)
    assert (closed.updated_at, closed.updated_by) == (EARLIER, ALICE.id)


def test_a_version_changes_state_grace_validity_and_place_as_copies() -> None:
    record = version(disable_at=NOW)

    assert record.with_state(VersionState.DESTROYED).disable_at == NOW
    by_hand = record.set_by_hand(VersionState.DISABLED)
    assert (by_hand.state, by_hand.disable_at) == (VersionState.DISABLED, None)
    assert version().with_grace_until(NOW).disable_at == NOW
    valid = version().with_validity(Validity(expires_at=NOW, not_before=EARLIER))
    assert (valid.expires_at, valid.not_before) == (NOW, EARLIER)
    moved = record.relocated("vault", "kv/x")
    assert (moved.backend, moved.locator, moved.checksum) == ("vault", "kv/x", "sum")
    assert record.state is VersionState.ENABLED and record.backend == "local"


def test_a_version_carries_its_stored_form_without_showing_it() -> None:
    record = version()

    carried = record.with_stored(b"ciphertext")

    assert carried.stored == b"ciphertext" and record.stored is None
    assert carried == record  # the stored form is not part of the version's identity
    assert "ciphertext" not in repr(carried)
    with pytest.raises(dataclasses.FrozenInstanceError):
        carried.stored = None  # type: ignore[misc]


@pytest.mark.parametrize(
    ("record", "owner", "error"),
    [
        (version(state=VersionState.DISABLED), secret(), VersionUnavailable),
        (version(disable_at=NOW), secret(), VersionUnavailable),
        (version(), secret(expires_at=NOW), Expired),
        (version(expires_at=NOW - timedelta(seconds=1)), secret(), Expired),
        (version(), secret(not_before=NOW + timedelta(seconds=1)), NotYetValid),
        (version(not_before=NOW + timedelta(days=1)), secret(), NotYetValid),
    ],
)
def test_a_version_that_may_not_be_served_says_why(
    record: SecretVersion, owner: Secret, error: type[Exception]
) -> None:
    with pytest.raises(error):
        record.check_servable(owner, NOW)


def test_a_version_within_its_validity_is_served() -> None:
    record = version(
        expires_at=NOW + timedelta(seconds=1),
        not_before=NOW,
        disable_at=NOW + timedelta(seconds=1),
    )

    record.check_servable(secret(not_before=EARLIER), NOW)  # no error


def _fields(value: object) -> dict[str, object]:
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}  # type: ignore[arg-type]


def test_a_stored_secret_is_the_one_its_constructor_builds() -> None:
    built = secret(latest_version=0)  # below the current version: raised to it
    values = _fields(built) | {"latest_version": 0}

    stored = Secret.of_stored(values)

    assert stored == built and stored.latest_version == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored.name = "OTHER"  # type: ignore[misc]


def test_a_stored_secret_or_version_needs_every_field_and_no_other() -> None:
    values = _fields(secret())
    with pytest.raises(TypeError, match="every field"):
        Secret.of_stored({name: v for name, v in values.items() if name != "revision"})
    with pytest.raises(TypeError, match="every field"):
        Secret.of_stored(values | {"unknown": 1})
    version_values = {k: v for k, v in _fields(version()).items() if k not in ("stage", "stored")}
    assert SecretVersion.of_stored(dict(version_values)) == version()
    with pytest.raises(TypeError, match="every field"):
        SecretVersion.of_stored({k: v for k, v in version_values.items() if k != "locator"})
