"""Rotation: a new value made `pending`, tested, then promoted to `current`.

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

The policies themselves (which rotator, when, who may attach it) are `core.rotation_policies`';
a stored policy that today's configuration no longer allows fails its runs
(`rotation_policies.policy_problem`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from core.audit import Attempt, AuditTrail
from core.backends import BackendRegistry
from core.domain.access import Action
from core.domain.audit import AuditAction
from core.domain.errors import (
    Conflict,
    InvalidInput,
    PreconditionFailed,
    RotationFailed,
    ServiceError,
)
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.secrets import Secret, SecretVersion, Validity, VersionState
from core.domain.values import Principal, SecretValue, VersionKey
from core.domain.work import Lease
from core.events import ChangeFeed
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ValueReader
from core.rotation_policies import (
    PolicyDraft,
    RotationPolicies,
    RotationSettings,
    Schedule,
    policy_problem,
)
from core.secret_access import check_revision, load_secret, load_version
from core.stored_values import MAX_WRITE_ATTEMPTS, discard_value, store_value
from core.types import TypeRegistry, retyped_metadata
from ports.rotation import RotationTarget, Rotator
from ports.security import Clock
from ports.storage import StorageBackend
from ports.types import TypeCheck
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


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
        self._schedule = schedule
        self._events = events
        self._audit = audit
        self._settings = settings or RotationSettings()
        self._types = types or TypeRegistry()
        self._reader = ValueReader(backends, clock, checksum)

        self._policies = RotationPolicies(
            uow_factory, clock, rotators, schedule, audit, self._settings
        )

    # -- policies: `RotationPolicies`' use cases, through the one rotation service -----------

    def get_policy(self, actor: Principal, secret_id: UUID) -> RotationPolicy:
        return self._policies.get_policy(actor, secret_id)

    def set_policy(
        self,
        actor: Principal,
        secret_id: UUID,
        draft: PolicyDraft,
        *,
        expected_revision: int | None = None,
    ) -> tuple[Secret, RotationPolicy]:
        """Create or replace the secret's policy; its first run is one period from now."""
        return self._policies.set_policy(
            actor, secret_id, draft, expected_revision=expected_revision
        )

    def delete_policy(
        self, actor: Principal, secret_id: UUID, *, expected_revision: int | None = None
    ) -> Secret:
        return self._policies.delete_policy(actor, secret_id, expected_revision=expected_revision)

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
            rotator = self._policies.rotator(policy.rotator) if policy is not None else None
            problem = (
                policy_problem(uow, secret, rotator, policy)
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

    def _destroy_value(self, record: SecretVersion) -> None:
        key = VersionKey(record.secret_id, record.version)
        self._backends.get(record.backend).destroy(key, record.locator)

    def _discard(self, record: SecretVersion) -> None:
        """Best effort: remove a pending value that will never be current."""
        discard_value(self._backends.get(record.backend), record)
