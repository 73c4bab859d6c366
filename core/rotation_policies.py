"""Rotation policies: when a secret is rotated by itself, and by which rotator.

Policies rotate on an interval or a cron schedule; the worker claims the due ones and runs them
(`core.rotation`). A rotator that hands values to a system outside the service
(`Rotator.calls_out`, e.g. `webhook`) names a target the operator configured, never a URL or a
key; attaching it takes the admin role at the secret's scope (editors may attach `random`, and
rotate now whatever the rotator), and only for a scope the target serves. A stored policy is
checked again at each run against the configuration of the day (`policy_problem`): one that no
longer passes (its target removed or narrowed, or settings from before targets that name a URL
or key themselves) fails its runs, recorded like any failed rotation, until an admin sets it
again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from core.access import allowed, caller_bindings
from core.audit import AuditTrail
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    RotationFailed,
)
from core.domain.rotation import RotationPolicy
from core.domain.secrets import Secret
from core.domain.values import Principal, ScopeType
from core.secret_access import check_revision, load_secret
from ports.rotation import Rotator
from ports.scheduling import CronSchedule
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 10 * 366 * 24 * 3600
MAX_GRACE_SECONDS = 90 * 24 * 3600


@dataclass(frozen=True)
class RotationSettings:
    """Service-wide rotation settings, from configuration.

    `grace`: how long a replaced version stays readable unless its policy says otherwise;
    `timeout`: after how long a pending version is taken for the leftover of a rotation that
    died; `retry_after`: how soon a failed scheduled rotation is tried again (at the latest at
    its next scheduled time).
    """

    grace: timedelta = timedelta(hours=24)
    timeout: timedelta = timedelta(minutes=5)
    retry_after: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class PolicyDraft:
    """A policy as a caller asks for it: exactly one of `interval_seconds` and `cron`."""

    rotator: str
    settings: dict[str, Any] = field(default_factory=dict)
    interval_seconds: int | None = None
    cron: str | None = None
    grace_seconds: int | None = None


class Schedule:
    """When a policy runs next, on its interval or its cron line."""

    def __init__(self, cron: CronSchedule) -> None:
        self._cron = cron

    def check(self, interval_seconds: int | None, cron: str | None) -> None:
        if (interval_seconds is None) == (cron is None):
            raise InvalidInput(
                "a rotation policy has either interval_seconds or cron", details={"field": "cron"}
            )
        if interval_seconds is not None and not (
            MIN_INTERVAL_SECONDS <= interval_seconds <= MAX_INTERVAL_SECONDS
        ):
            raise InvalidInput(
                f"interval_seconds is between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS}",
                details={"field": "interval_seconds"},
            )
        if cron is not None:
            self._cron.check(cron)

    def next_after(
        self, interval_seconds: int | None, cron: str | None, moment: datetime
    ) -> datetime:
        if interval_seconds is not None:
            return moment + timedelta(seconds=interval_seconds)
        assert cron is not None  # checked when the policy was set
        return self._cron.next_after(cron, moment)

    def next_run(self, policy: RotationPolicy, moment: datetime) -> datetime:
        return self.next_after(policy.interval_seconds, policy.cron, moment)


class RotationPolicies:
    """Reading, setting and removing a secret's rotation policy."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        rotators: Mapping[str, Rotator],
        schedule: Schedule,
        audit: AuditTrail,
        settings: RotationSettings | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._rotators = rotators
        self._schedule = schedule
        self._audit = audit
        self._settings = settings or RotationSettings()

    def get_policy(self, actor: Principal, secret_id: UUID) -> RotationPolicy:
        with (
            self._audit.attempt(
                actor, AuditAction.SECRET_ROTATION_POLICY_READ, f"secret:{secret_id}"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            load_secret(uow, actor, Action.LIST, secret_id, attempt, self._clock.now())
            found = uow.rotations.get(secret_id)
            if found is None:
                raise NotFound(f"secret {secret_id} has no rotation policy")
            attempt.succeed(uow)
            uow.commit()
        return found

    def set_policy(
        self,
        actor: Principal,
        secret_id: UUID,
        draft: PolicyDraft,
        *,
        expected_revision: int | None = None,
    ) -> tuple[Secret, RotationPolicy]:
        """Create or replace the secret's policy; its first run is one period from now."""
        self._schedule.check(draft.interval_seconds, draft.cron)
        rotator = self.rotator(draft.rotator)
        grace = self._grace_seconds(draft.grace_seconds)
        with (
            self._audit.attempt(
                actor,
                AuditAction.SECRET_ROTATION_POLICY_SET,
                f"secret:{secret_id}",
                details={"rotator": draft.rotator},
            ) as attempt,
            self._uow_factory() as uow,
        ):
            now = self._clock.now()
            secret = load_secret(uow, actor, Action.WRITE, secret_id, attempt, now)
            self._check_attachable(uow, actor, secret, rotator, draft.settings, now)
            check_revision(secret, expected_revision)
            existing = uow.rotations.get(secret_id)
            policy = RotationPolicy(
                secret_id=secret_id,
                rotator=draft.rotator,
                settings=dict(draft.settings),
                interval_seconds=draft.interval_seconds,
                cron=draft.cron,
                grace_seconds=grace,
                next_run_at=self._schedule.next_after(draft.interval_seconds, draft.cron, now),
                created_at=existing.created_at if existing else now,
                created_by=existing.created_by if existing else actor.id,
                last_run_at=existing.last_run_at if existing else None,
                last_status=existing.last_status if existing else None,
                last_error=existing.last_error if existing else None,
                updated_at=now if existing else None,
                updated_by=actor.id if existing else None,
            )
            updated = secret.changed(actor, now)
            uow.secrets.update(updated, expected_revision=secret.revision)
            uow.rotations.put(policy)
            attempt.succeed(uow)
            uow.commit()
        return updated, policy

    def delete_policy(
        self, actor: Principal, secret_id: UUID, *, expected_revision: int | None = None
    ) -> Secret:
        with (
            self._audit.attempt(
                actor, AuditAction.SECRET_ROTATION_POLICY_DELETE, f"secret:{secret_id}"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            now = self._clock.now()
            secret = load_secret(uow, actor, Action.WRITE, secret_id, attempt, now)
            check_revision(secret, expected_revision)
            if uow.rotations.get(secret_id) is None:
                raise NotFound(f"secret {secret_id} has no rotation policy")
            updated = secret.changed(actor, now)
            uow.secrets.update(updated, expected_revision=secret.revision)
            uow.rotations.delete(secret_id)
            attempt.succeed(uow)
            uow.commit()
        return updated

    def _check_attachable(
        self,
        uow: UnitOfWork,
        actor: Principal,
        secret: Secret,
        rotator: Rotator,
        settings: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """A rotator that calls out takes the admin role at the secret's scope (a binding
        narrowed to names or to the secret is not enough); its settings are checked only then,
        so what they name (configured targets) is told to admins only. It must serve the scope."""
        if rotator.calls_out:
            bindings = caller_bindings(uow, actor, now)
            scope = Target(secret.scope, secret.scope_path)
            if not allowed(actor, Action.ADMIN, scope, bindings, now):
                raise Forbidden(
                    f"{actor} may not attach the rotator '{rotator.name}' to secret {secret.id}: "
                    "it hands values to a system outside the service, which takes the admin "
                    f"role at scope {secret.scope}"
                )
        rotator.check_settings(settings)
        if not serves(uow, rotator, settings, secret):
            raise InvalidInput(
                f"rotation settings: the configured target does not serve scope {secret.scope} "
                "(the operator's configuration lists the scopes each target serves)",
                details={"field": "settings"},
            )

    # -- helpers -----------------------------------------------------------------------------

    def rotator(self, name: str) -> Rotator:
        """The rotator named `name` (`InvalidInput` if there is none)."""
        try:
            return self._rotators[name]
        except KeyError:
            raise InvalidInput(
                f"unknown rotator '{name}'; available: {', '.join(sorted(self._rotators))}",
                details={"field": "rotator"},
            ) from None

    def _grace_seconds(self, requested: int | None) -> int:
        if requested is None:
            return int(self._settings.grace.total_seconds())
        if not 0 <= requested <= MAX_GRACE_SECONDS:
            raise InvalidInput(
                f"grace_seconds is between 0 and {MAX_GRACE_SECONDS}",
                details={"field": "grace_seconds"},
            )
        return requested


def policy_problem(
    uow: UnitOfWork, secret: Secret, rotator: Rotator, policy: RotationPolicy
) -> RotationFailed | None:
    """Why a stored policy cannot run under today's configuration, if it cannot."""
    try:
        rotator.check_settings(policy.settings)
        served = serves(uow, rotator, policy.settings, secret)
    except InvalidInput as error:
        reason = f"the rotation policy cannot run: {error.message}"
    else:
        if served:
            return None
        reason = (
            f"the rotation policy cannot run: its target does not serve scope {secret.scope} "
            "any more"
        )
    return RotationFailed(reason, details={"reason": reason[:512]})


def serves(uow: UnitOfWork, rotator: Rotator, settings: Mapping[str, Any], secret: Secret) -> bool:
    """Whether the secret's scope is one the (checked) settings serve, or below one; a
    personal scope only when it is named itself."""
    served = rotator.scopes_served(settings)
    if served is None or secret.scope in served:
        return True
    if secret.scope.type is ScopeType.USER:
        return False
    found = (uow.scopes.get(ref) for ref in served)
    return any(scope is not None and secret.scope_path.startswith(scope.path) for scope in found)
