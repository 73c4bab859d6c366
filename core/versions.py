"""Use cases on the versions of a secret: list them, look one up; disable, enable, destroy one.

Each is a write to the secret: it takes `If-Match` (the secret's revision) and moves the
revision on. Disabling and enabling take an editor; destroying, which cannot be undone, an admin
(as a purge does). The current and the pending version cannot be disabled or destroyed (write a new
value, roll back or finish the rotation first). Destroying removes the value from its backend
for good and keeps the row, so numbers stay gapless; the backend goes first, so a destroy that
fails half-way is finished by destroying again.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from core.audit import Attempt, AuditTrail
from core.audited_commit import commit_audited
from core.backends import BackendRegistry
from core.domain.access import Action
from core.domain.audit import AuditAction
from core.domain.errors import Conflict, PreconditionFailed
from core.domain.secrets import Secret, SecretVersion, Stage, VersionState
from core.domain.values import Principal, VersionKey
from core.secret_access import check_revision, load_secret, load_version
from core.stored_values import MAX_WRITE_ATTEMPTS
from ports.security import Clock
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

ACTIONS = {
    VersionState.DISABLED: AuditAction.SECRET_VERSION_DISABLE,
    VersionState.ENABLED: AuditAction.SECRET_VERSION_ENABLE,
    VersionState.DESTROYED: AuditAction.SECRET_VERSION_DESTROY,
}
# Destroying a value is for good, like a purge: an admin's; disabling or enabling, an editor's.
REQUIRED = {
    VersionState.DISABLED: Action.WRITE,
    VersionState.ENABLED: Action.WRITE,
    VersionState.DESTROYED: Action.ADMIN,
}


class VersionService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        backends: BackendRegistry,
        clock: Clock,
        audit: AuditTrail,
    ) -> None:
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._audit = audit

    def list_versions(self, actor: Principal, secret_id: UUID) -> list[SecretVersion]:
        with self._audit.attempt(
            actor, AuditAction.SECRET_LIST_VERSIONS, f"secret:{secret_id}"
        ) as attempt:
            with self._uow_factory(read_only=True) as uow:
                load_secret(uow, actor, Action.LIST, secret_id, attempt, self._clock.now())
                versions = uow.secrets.list_versions(secret_id)
            attempt.succeed_durably()
            return versions

    def get_version(self, actor: Principal, secret_id: UUID, number: int) -> SecretVersion:
        with self._audit.attempt(
            actor, AuditAction.SECRET_READ_VERSION, f"secret:{secret_id}", version=number
        ) as attempt:
            with self._uow_factory(read_only=True) as uow:
                load_secret(uow, actor, Action.LIST, secret_id, attempt, self._clock.now())
                record = load_version(uow, secret_id, number)
            attempt.succeed_durably()
            return record

    def disable(
        self,
        actor: Principal,
        secret_id: UUID,
        number: int,
        *,
        expected_revision: int | None = None,
    ) -> tuple[Secret, SecretVersion]:
        """Stop serving a version (it can be enabled again)."""
        return self._change_state(
            actor, secret_id, number, VersionState.DISABLED, expected_revision
        )

    def enable(
        self,
        actor: Principal,
        secret_id: UUID,
        number: int,
        *,
        expected_revision: int | None = None,
    ) -> tuple[Secret, SecretVersion]:
        """Serve a disabled version again (a rotation's grace period no longer applies)."""
        return self._change_state(actor, secret_id, number, VersionState.ENABLED, expected_revision)

    def destroy(
        self,
        actor: Principal,
        secret_id: UUID,
        number: int,
        *,
        expected_revision: int | None = None,
    ) -> tuple[Secret, SecretVersion]:
        """Remove a version's value from its backend for good; its row stays, `destroyed`."""
        with self._audit.attempt(
            actor, ACTIONS[VersionState.DESTROYED], f"secret:{secret_id}", version=number
        ) as attempt:
            with self._uow_factory() as uow:
                required = REQUIRED[VersionState.DESTROYED]
                secret = load_secret(uow, actor, required, secret_id, attempt, self._clock.now())
                record = load_version(uow, secret_id, number)
            check_revision(secret, expected_revision)
            self._check_changeable(secret, record, VersionState.DESTROYED)
            if record.state is not VersionState.DESTROYED:
                key = VersionKey(secret_id, number)
                self._backends.get(record.backend).destroy(key, record.locator)
            return self._save(actor, secret_id, number, VersionState.DESTROYED, attempt)

    def _change_state(
        self,
        actor: Principal,
        secret_id: UUID,
        number: int,
        state: VersionState,
        expected_revision: int | None,
    ) -> tuple[Secret, SecretVersion]:
        with self._audit.attempt(
            actor, ACTIONS[state], f"secret:{secret_id}", version=number
        ) as attempt:
            return self._save(actor, secret_id, number, state, attempt, expected_revision)

    def _save(
        self,
        actor: Principal,
        secret_id: UUID,
        number: int,
        state: VersionState,
        attempt: Attempt,
        expected_revision: int | None = None,
    ) -> tuple[Secret, SecretVersion]:
        """Save the version's new state and move the secret's revision on, under the secret's
        row lock (other writers wait for it); should the revision move all the same (a store
        without row locks), again, unless the caller asked for a check-and-set."""

        def save(uow: UnitOfWork) -> tuple[tuple[Secret, SecretVersion], dict[str, Any]]:
            now = self._clock.now()
            secret = load_secret(uow, actor, REQUIRED[state], secret_id, attempt, now, lock=True)
            check_revision(secret, expected_revision)
            record = load_version(uow, secret_id, number)
            self._check_changeable(secret, record, state)
            changed = record.set_by_hand(state)
            updated = secret.changed(actor, now)
            uow.secrets.update(updated, expected_revision=secret.revision)
            uow.secrets.update_version(changed)
            return (updated, changed), {"details": {"state": state.value}}

        for _ in range(MAX_WRITE_ATTEMPTS):
            try:  # the event with the COMMIT (`commit_audited`)
                return commit_audited(self._uow_factory, attempt, save)
            except PreconditionFailed:
                if expected_revision is not None:
                    raise
        raise Conflict("the secret is being written by too many writers at once; try again")

    @staticmethod
    def _check_changeable(secret: Secret, record: SecretVersion, state: VersionState) -> None:
        if record.state is VersionState.DESTROYED and state is not VersionState.DESTROYED:
            raise Conflict(
                f"version {record.version} of secret {secret.id} is destroyed: its value is gone",
                details={"version": record.version, "state": record.state.value},
            )
        stage = secret.stage_of(record.version)
        if state is not VersionState.ENABLED and stage in (Stage.CURRENT, Stage.PENDING):
            raise Conflict(
                f"version {record.version} of secret {secret.id} is the {stage.value} one; "
                "write a new value or roll back first",
                details={"version": record.version, "stage": stage.value},
            )
