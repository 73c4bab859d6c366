"""Rotation: a new value made `pending`, tested, then promoted to `current`; and its policies.

Two phases, each its own transaction, so no transaction is held open while a backend or the
owning system is called:
1. the new value (given, or made by the policy's rotator) is stored and recorded as the
   `pending` version;
2. it is read back and checked, the rotator has the owning system accept it (a webhook), and it
   is promoted: it becomes `current`, the old one `previous`, readable for the grace period and
   then disabled (by the worker; reads refuse it as soon as the period is over).
A failure after the value was stored destroys the pending value, leaves the current one in
place, and records why: in the policy (`last_status`, `last_error`), as a
`secret.rotation_failed` event, and in the audit trail. A rotation whose process died leaves a
pending version behind; once it is older than the rotation timeout the next rotation discards
it (its value destroyed, its row kept) and starts again, so nothing stays half done.

Policies rotate on an interval or a cron schedule; the worker claims the due ones. A rotator
that hands values to a system outside the service (`Rotator.calls_out`, e.g. `webhook`) names a
target the operator configured, never a URL or a key; attaching it takes the admin role at the
secret's scope (editors may attach `random`, and rotate now whatever the rotator), and only for
a scope the target serves. A stored policy is checked again at each run against the
configuration of the day: one that no longer passes (its target removed or narrowed, or settings
from before targets that name a URL or key themselves) fails its runs, recorded like any failed
rotation, until an admin sets it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from core.access import allowed, caller_bindings
from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RotationFailed,
    ServiceError,
)
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.secrets import Secret, SecretVersion, Validity, VersionState
from core.domain.values import Principal, ScopeType, SecretValue, VersionKey
from core.domain.work import Lease
from core.events import ChangeFeed
from core.policy import SecretPolicy, ValueChecksum
from core.services import MAX_WRITE_ATTEMPTS, ValueReader, discard_value, store_value
from core.types import TypeRegistry, retyped_metadata
from core.versions import check_revision, load_secret, load_version
from ports.rotation import RotationTarget, Rotator
from ports.scheduling import CronSchedule
from ports.security import Clock
from ports.storage import StorageBackend
from ports.types import TypeCheck
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

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


class RotationService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        backends: BackendRegistry,
        clock: Clock,
        checksum: ValueChecksum,
        policy: SecretPolicy,
        rotators: Mapping[str, Rotator],
        schedule: Schedule,
        events: ChangeFeed,
        audit: AuditTrail,
        settings: RotationSettings | None = None,
        types: TypeRegistry | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._checksum = checksum
        self._policy = policy
        self._rotators = rotators
        self._schedule = schedule
        self._events = events
        self._audit = audit
        self._settings = settings or RotationSettings()
        self._types = types or TypeRegistry()
        self._reader = ValueReader(backends, clock, checksum)

    # -- policies ----------------------------------------------------------------------------

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
        rotator = self._rotator(draft.rotator)
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

    # -- rotating ----------------------------------------------------------------------------

    def rotate(
        self,
        actor: Principal,
        secret_id: UUID,
        value: SecretValue | None = None,
        *,
        expected_revision: int | None = None,
        expires_at: datetime | None = None,
        not_before: datetime | None = None,
    ) -> Secret:
        """Rotate now: to `value`, or to a value the policy's rotator makes."""
        self._policy.check_metadata(expires_at=expires_at, not_before=not_before)
        validity = Validity(expires_at=expires_at, not_before=not_before)
        with self._audit.attempt(
            actor, AuditAction.SECRET_ROTATE, f"secret:{secret_id}"
        ) as attempt:
            return self._rotate(actor, secret_id, value, expected_revision, validity, None, attempt)

    def run_scheduled(self, actor: Principal, policy: RotationPolicy, lease: Lease) -> bool:
        """The worker's job for one claimed policy; whether the secret was rotated. However it
        ends, the policy is released and rescheduled."""
        try:
            with self._audit.attempt(
                actor,
                AuditAction.SECRET_ROTATE,
                f"secret:{policy.secret_id}",
                details={"scheduled": True},
            ) as attempt:
                self._rotate(actor, policy.secret_id, None, None, Validity(), lease, attempt)
        except ServiceError as error:
            log.warning("scheduled rotation of secret %s failed: %s", policy.secret_id, error)
            now = self._clock.now()
            with self._uow_factory() as uow:  # unless the failure was recorded already
                if uow.rotations.finish_run(self._failed_run(policy, error, now, lease)):
                    uow.commit()
            return False
        return True

    def _rotate(
        self,
        actor: Principal,
        secret_id: UUID,
        value: SecretValue | None,
        expected_revision: int | None,
        validity: Validity,
        lease: Lease | None,
        attempt: Attempt,
    ) -> Secret:
        now = self._clock.now()
        with self._uow_factory() as uow:
            secret = load_secret(uow, actor, Action.WRITE, secret_id, attempt, now)
            policy = uow.rotations.get(secret_id)
            leftover = (
                load_version(uow, secret_id, secret.pending_version)
                if secret.pending_version is not None
                else None
            )
            rotator = self._rotator(policy.rotator) if policy is not None else None
            problem = (
                self._policy_problem(uow, secret, rotator, policy)
                if rotator is not None and policy is not None
                else None
            )
        check_revision(secret, expected_revision)
        if leftover is not None and now < leftover.created_at + self._settings.timeout:
            raise Conflict(
                f"secret {secret_id} is being rotated (version {leftover.version} is pending)",
                details={"pending_version": leftover.version},
            )
        if problem is not None:  # recorded like any failed rotation, then refused
            self._abandon(secret, None, policy, lease, problem, actor, attempt)
            raise problem
        if value is None:
            if rotator is None or policy is None:
                raise InvalidInput(
                    f"secret {secret_id} has no rotation policy to make a value: give one",
                    details={"field": "value"},
                )
            value = rotator.generate(policy.settings)
        backend = self._backends.get(secret.backend)
        self._policy.check_value(value, backend.capabilities.max_value_bytes, backend.name)
        typed = self._types.check(secret.type, value)  # a rotated value is of the same type

        pending: SecretVersion | None = None
        try:
            if leftover is not None:
                self._destroy_value(leftover)
            strict = expected_revision is not None
            pending = self._prepare(
                secret, leftover, value, backend, validity, actor, attempt, strict
            )
            self._test(secret, pending, value, rotator, policy)
            return self._promote(pending, typed, policy, lease, actor, attempt)
        except ServiceError as error:
            self._abandon(secret, pending, policy, lease, error, actor, attempt)
            raise

    def _prepare(
        self,
        secret: Secret,
        leftover: SecretVersion | None,
        value: SecretValue,
        backend: StorageBackend,
        validity: Validity,
        actor: Principal,
        attempt: Attempt,
        strict: bool,
    ) -> SecretVersion:
        """Phase 1: store the value and record it as the pending version. A secret changed
        since it was read fails it: `PreconditionFailed` if `strict` (If-Match), else `Conflict`."""
        now = self._clock.now()
        number = secret.latest_version + 1
        record = store_value(
            backend, self._checksum, secret.id, number, value, actor, now
        ).with_validity(validity)
        prepared = secret.with_pending_version(number, actor, now)
        try:
            with self._uow_factory() as uow:
                uow.secrets.update(prepared, expected_revision=secret.revision)
                if leftover is not None:
                    uow.secrets.update_version(leftover.with_state(VersionState.DESTROYED))
                uow.secrets.add_version(record)
                step = attempt.related(
                    AuditAction.SECRET_ROTATE_PENDING, attempt.event.resource, version=number
                )
                self._audit.chain.append(uow, [step])
                uow.commit()
        except PreconditionFailed:
            self._discard(record)
            if strict:
                raise
            raise Conflict(
                f"secret {secret.id} changed while its rotation started; try again",
                details={"revision": secret.revision},
            ) from None
        except BaseException:
            self._discard(record)
            raise
        return record

    def _test(
        self,
        secret: Secret,
        pending: SecretVersion,
        value: SecretValue,
        rotator: Rotator | None,
        policy: RotationPolicy | None,
    ) -> None:
        """Phase 2: the stored value reads back intact, and the owning system accepts it."""
        self._reader.fetch(secret, pending)  # `ValueIntegrityError` unless stored intact
        if rotator is not None and policy is not None:
            target = RotationTarget(
                secret_id=secret.id,
                name=secret.name,
                scope=str(secret.scope),
                environment=secret.environment,
                version=pending.version,
            )
            rotator.apply(target, value, policy.settings)

    def _promote(
        self,
        pending: SecretVersion,
        typed: TypeCheck,
        policy: RotationPolicy | None,
        lease: Lease | None,
        actor: Principal,
        attempt: Attempt,
    ) -> Secret:
        """Phase 2, end: pending becomes current; the old current starts its grace period."""
        grace = (
            timedelta(seconds=policy.grace_seconds) if policy is not None else self._settings.grace
        )
        for _ in range(MAX_WRITE_ATTEMPTS):
            now = self._clock.now()
            with self._uow_factory() as uow:
                secret = uow.secrets.get(pending.secret_id)
                if secret is None or secret.is_deleted or secret.pending_version != pending.version:
                    raise RotationFailed(
                        f"secret {pending.secret_id} was deleted or its pending version replaced "
                        "during the rotation",
                        details={"reason": "the secret changed during the rotation"},
                    )
                replaced = uow.secrets.get_version(secret.id, secret.current_version)
                promoted = secret.with_promoted_version(
                    pending.version,
                    actor,
                    now,
                    **retyped_metadata(secret, typed),  # e.g. a certificate's own expiry
                )
                try:
                    uow.secrets.update(promoted, expected_revision=secret.revision)
                except PreconditionFailed:
                    continue  # another writer moved the secret on: read it again
                if replaced is not None and replaced.state is VersionState.ENABLED:
                    uow.secrets.update_version(replaced.with_grace_until(now + grace))
                if policy is not None:
                    next_run = self._schedule.next_run(policy, now) if lease else None
                    uow.rotations.finish_run(
                        RotationRun(
                            secret.id,
                            now,
                            "success",
                            next_run_at=next_run,
                            worker=lease.worker if lease else None,
                        )
                    )
                attempt.succeed(
                    uow,
                    version=pending.version,
                    details={
                        **attempt.event.details,
                        "value_hmac": pending.checksum,
                        "previous_version": secret.current_version,
                    },
                )
                uow.commit()
            return promoted
        raise RotationFailed(
            f"secret {pending.secret_id} is being written by too many writers to promote "
            "its rotation",
            details={"reason": "too many concurrent writers"},
        )

    def _abandon(
        self,
        secret: Secret,
        pending: SecretVersion | None,
        policy: RotationPolicy | None,
        lease: Lease | None,
        error: ServiceError,
        actor: Principal,
        attempt: Attempt,
    ) -> None:
        """A rotation failed after it started: destroy the pending value, keep the current one,
        and record why (policy, `secret.rotation_failed` event, audit)."""
        reason = str(error.details.get("reason") or error.message)[:512]
        if pending is not None:
            self._discard(pending)
        for _ in range(MAX_WRITE_ATTEMPTS):
            now = self._clock.now()
            with self._uow_factory() as uow:
                current = uow.secrets.get(secret.id)
                if (
                    pending is not None
                    and current is not None
                    and current.pending_version == pending.version
                ):
                    try:
                        uow.secrets.update(
                            current.without_pending(actor, now),
                            expected_revision=current.revision,
                        )
                    except PreconditionFailed:
                        continue
                    uow.secrets.update_version(pending.with_state(VersionState.DESTROYED))
                    step = attempt.related(
                        AuditAction.SECRET_ROTATE_ABANDON,
                        attempt.event.resource,
                        version=pending.version,
                        reason=error.code,
                    )
                    self._audit.chain.append(uow, [step])
                if policy is not None:
                    uow.rotations.finish_run(self._failed_run(policy, error, now, lease))
                self._events.record(
                    uow,
                    "secret.rotation_failed",
                    secret.id,
                    at=now,
                    actor=actor.id,
                    version=pending.version if pending else None,
                    reason=reason,
                )
                uow.commit()
            return
        log.error("could not record the failed rotation of secret %s", secret.id)

    def _failed_run(
        self, policy: RotationPolicy, error: ServiceError, now: datetime, lease: Lease | None
    ) -> RotationRun:
        reason = str(error.details.get("reason") or error.message)[:512]
        retry = None
        if lease is not None:
            retry = min(now + self._settings.retry_after, self._schedule.next_run(policy, now))
        return RotationRun(
            policy.secret_id,
            now,
            "failed",
            error=reason,
            next_run_at=retry,
            worker=lease.worker if lease else None,
        )

    # -- who may attach a rotator, and where it may run ---------------------------------------

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
        if not self._serves(uow, rotator, settings, secret):
            raise InvalidInput(
                f"rotation settings: the configured target does not serve scope {secret.scope} "
                "(the operator's configuration lists the scopes each target serves)",
                details={"field": "settings"},
            )

    def _policy_problem(
        self, uow: UnitOfWork, secret: Secret, rotator: Rotator, policy: RotationPolicy
    ) -> RotationFailed | None:
        """Why a stored policy cannot run under today's configuration, if it cannot."""
        try:
            rotator.check_settings(policy.settings)
            serves = self._serves(uow, rotator, policy.settings, secret)
        except InvalidInput as error:
            reason = f"the rotation policy cannot run: {error.message}"
        else:
            if serves:
                return None
            reason = (
                f"the rotation policy cannot run: its target does not serve scope {secret.scope} "
                "any more"
            )
        return RotationFailed(reason, details={"reason": reason[:512]})

    @staticmethod
    def _serves(
        uow: UnitOfWork, rotator: Rotator, settings: Mapping[str, Any], secret: Secret
    ) -> bool:
        """Whether the secret's scope is one the (checked) settings serve, or below one; a
        personal scope only when it is named itself."""
        served = rotator.scopes_served(settings)
        if served is None or secret.scope in served:
            return True
        if secret.scope.type is ScopeType.USER:
            return False
        found = (uow.scopes.get(ref) for ref in served)
        return any(
            scope is not None and secret.scope_path.startswith(scope.path) for scope in found
        )

    # -- helpers -----------------------------------------------------------------------------

    def _rotator(self, name: str) -> Rotator:
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

    def _destroy_value(self, record: SecretVersion) -> None:
        key = VersionKey(record.secret_id, record.version)
        self._backends.get(record.backend).destroy(key, record.locator)

    def _discard(self, record: SecretVersion) -> None:
        """Best effort: remove a pending value that will never be current."""
        discard_value(self._backends.get(record.backend), record)
