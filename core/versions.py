"""Use cases on one version of a secret: disable, enable, destroy.

Each is a write to the secret: it takes `If-Match` (the secret's revision) and moves the
revision on. Disabling and enabling take an editor; destroying, which cannot be undone, an admin
(as a purge does). The current and the pending version cannot be disabled or destroyed (write a new
value, roll back or finish the rotation first). Destroying removes the value from its backend
for good and keeps the row, so numbers stay gapless; the backend goes first, so a destroy that
fails half-way is finished by destroying again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from core.access import authorize
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action
from core.domain.audit import AuditAction
from core.domain.errors import Conflict, NotFound, PreconditionFailed
from core.domain.secrets import Secret, SecretVersion, Stage, VersionState
from core.domain.values import Principal, VersionKey
from core.services import MAX_WRITE_ATTEMPTS, audit_place, secret_target
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

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


def load_secret(
    uow: UnitOfWork,
    actor: Principal,
    action: Action,
    secret_id: UUID,
    attempt: Attempt,
    now: datetime,
    *,
    lock: bool = False,
) -> Secret:
    """The live secret, if the caller may do `action` to it; `NotFound` if it may not see it.
    With `lock`, its row is locked for the rest of the (writing) unit of work."""
    secret = uow.secrets.lock(secret_id) if lock else uow.secrets.get(secret_id)
    if secret is None or secret.is_deleted:
        raise NotFound(f"no secret {secret_id}")
    attempt.learn(**audit_place(secret))
    authorize(uow, actor, action, secret_target(secret), now)
    return secret


def load_version(uow: UnitOfWork, secret_id: UUID, number: int) -> SecretVersion:
    record = uow.secrets.get_version(secret_id, number)
    if record is None:
        raise NotFound(f"secret {secret_id} has no version {number}")
    return record


def check_revision(secret: Secret, expected_revision: int | None) -> None:
    if expected_revision is not None and expected_revision != secret.revision:
        raise PreconditionFailed(
            f"secret {secret.id} is at revision {secret.revision}, not {expected_revision}",
            details={"revision": secret.revision},
        )


class VersionService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        backends: BackendRegistry,
        clock: Clock,
        audit: AuditTrail,
    ) -> None:
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._audit = audit

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
        for _ in range(MAX_WRITE_ATTEMPTS):
            now = self._clock.now()
            with self._uow_factory() as uow:
                secret = load_secret(
                    uow, actor, REQUIRED[state], secret_id, attempt, now, lock=True
                )
                check_revision(secret, expected_revision)
                record = load_version(uow, secret_id, number)
                self._check_changeable(secret, record, state)
                changed = record.set_by_hand(state)
                updated = secret.changed(actor, now)
                try:
                    uow.secrets.update(updated, expected_revision=secret.revision)
                except PreconditionFailed:
                    if expected_revision is not None:
                        raise
                    continue
                uow.secrets.update_version(changed)
                attempt.succeed(uow, details={"state": state.value})
                uow.commit()
            return updated, changed
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
