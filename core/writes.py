"""Use cases that write a new version of a secret's value: write one, or roll back to an old one
(its value written again as the next version).

A value goes to its storage backend *before* the transaction that points at it (unless it is
sealed into that row), and is destroyed again if that transaction fails: never a version row
without a stored value, nor a stored value left without a row.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from core.audit import Attempt, AuditTrail
from core.audit_chain import CheckpointDue
from core.backends import BackendRegistry
from core.domain.access import Action
from core.domain.audit import AuditAction
from core.domain.errors import Conflict, PreconditionFailed, VersionUnavailable
from core.domain.secrets import Secret, SecretVersion, Validity, VersionState
from core.domain.values import Principal, SecretValue
from core.policy import SecretPolicy, ValueChecksum
from core.reads import ValueReader
from core.secret_access import check_revision, load_secret, load_version
from core.stored_values import MAX_WRITE_ATTEMPTS, discard_value, store_value
from core.types import TypeRegistry, retyped_metadata
from ports.security import Clock
from ports.storage import StorageBackend
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory


class WriteService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        backends: BackendRegistry,
        clock: Clock,
        checksum: ValueChecksum,
        policy: SecretPolicy,
        audit: AuditTrail,
        types: TypeRegistry | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._backends = backends
        self._clock = clock
        self._checksum = checksum
        self._policy = policy
        self._audit = audit
        self._types = types or TypeRegistry()
        self._reader = ValueReader(backends, clock, checksum)

    def write_value(
        self,
        actor: Principal,
        secret_id: UUID,
        value: SecretValue,
        *,
        expected_revision: int | None = None,
        expires_at: datetime | None = None,
        not_before: datetime | None = None,
    ) -> Secret:
        """Store `value` as the next version. With `expected_revision`, a check-and-set;
        `expires_at` and `not_before` bound when this version may be served."""
        validity = Validity(expires_at=expires_at, not_before=not_before)
        self._policy.check_metadata(expires_at=expires_at, not_before=not_before)
        with self._audit.attempt(
            actor, AuditAction.SECRET_WRITE_VALUE, f"secret:{secret_id}"
        ) as attempt:
            return self._write(actor, secret_id, value, expected_revision, attempt, validity)

    def rollback(
        self,
        actor: Principal,
        secret_id: UUID,
        version: int,
        *,
        expected_revision: int | None = None,
    ) -> Secret:
        """Make an old version's value current again, as a new version (history stays)."""
        with self._audit.attempt(
            actor,
            AuditAction.SECRET_ROLLBACK,
            f"secret:{secret_id}",
            details={"from_version": version},
        ) as attempt:
            with self._uow_factory() as uow:
                secret = self._load(uow, actor, secret_id, attempt)
                record = load_version(uow, secret_id, version)
            check_revision(secret, expected_revision)
            if record.state is VersionState.DESTROYED:
                raise VersionUnavailable(
                    f"version {version} of secret {secret_id} is destroyed: its value is gone",
                    details={"version": version, "state": record.state.value},
                )
            value = self._reader.fetch(secret, record)
            return self._write(actor, secret_id, value, expected_revision, attempt)

    def _write(
        self,
        actor: Principal,
        secret_id: UUID,
        value: SecretValue,
        expected_revision: int | None,
        attempt: Attempt,
        validity: Validity | None = None,
    ) -> Secret:
        """The next version, in a transaction that holds the secret's row lock: concurrent
        writers queue there, so without `If-Match` each gets its own number (gapless, nothing
        lost). A value sealed into the service's own database is checked and sealed under the
        lock, at the number found there, in that one unit of work; one put to an external
        store is put before the transaction (none is held open while a backend is called), and
        put again if another writer took its number meanwhile."""
        validity = validity or Validity()
        at_commit = True  # the audit event goes with the COMMIT, unless a checkpoint is due
        # A value sealed with its row needs no look before the transaction: everything is
        # checked under the lock (the default backend says whether to expect that).
        one_pass = self._backends.get(self._backends.default).capabilities.stored_with_metadata
        for _ in range(MAX_WRITE_ATTEMPTS):
            record = None
            if not one_pass:
                with self._uow_factory(read_only=True) as uow:
                    secret = self._load(uow, actor, secret_id, attempt)
                check_revision(secret, expected_revision)
                backend = self._backends.get(secret.backend)
                self._policy.check_value(value, backend.capabilities.max_value_bytes, backend.name)
                check = self._types.check(secret.type, value)
                if not backend.capabilities.stored_with_metadata:
                    record = self._version(backend, secret, value, actor, validity)
            try:
                with self._uow_factory() as uow:
                    secret = self._load(uow, actor, secret_id, attempt, lock=True)
                    check_revision(secret, expected_revision)
                    if one_pass:
                        backend = self._backends.get(secret.backend)
                        if not backend.capabilities.stored_with_metadata:
                            one_pass = False  # an external store: put the value first
                            continue
                        limit = backend.capabilities.max_value_bytes
                        self._policy.check_value(value, limit, backend.name)
                        check = self._types.check(secret.type, value)
                    record = record or self._version(backend, secret, value, actor, validity)
                    if record.version != secret.latest_version + 1:
                        raise PreconditionFailed("another writer took the version number")
                    updated = secret.with_new_version(
                        record.version, actor, record.created_at, **retyped_metadata(secret, check)
                    )
                    uow.secrets.update(updated, expected_revision=secret.revision)
                    uow.secrets.add_version(record)
                    attempt.succeed(
                        uow,
                        at_commit=at_commit,
                        version=record.version,
                        details={**attempt.event.details, "value_hmac": record.checksum},
                    )
                    uow.commit()
                return updated
            except CheckpointDue:  # nothing committed: again, the chain's lock taken in turn
                if record is not None:
                    discard_value(backend, record)
                at_commit = False
            except PreconditionFailed:
                if record is not None:
                    discard_value(backend, record)
                if expected_revision is not None:
                    raise
            except BaseException:
                if record is not None:
                    discard_value(backend, record)
                raise
        raise Conflict("the secret is being written by too many writers at once; try again")

    def _version(
        self,
        backend: StorageBackend,
        secret: Secret,
        value: SecretValue,
        actor: Principal,
        validity: Validity,
    ) -> SecretVersion:
        """The secret's next version, its value stored (or sealed, to store with the row)."""
        number = secret.latest_version + 1
        record = store_value(
            backend, self._checksum, secret.id, number, value, actor, self._clock.now()
        )
        return record.with_validity(validity)

    def _load(
        self,
        uow: UnitOfWork,
        actor: Principal,
        secret_id: UUID,
        attempt: Attempt,
        *,
        lock: bool = False,
    ) -> Secret:
        """The live secret, if the caller may write to it (its row locked with `lock`)."""
        now = self._clock.now()
        return load_secret(uow, actor, Action.WRITE, secret_id, attempt, now, lock=lock)
