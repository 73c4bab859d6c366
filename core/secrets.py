"""Use cases on secrets: create, look up and list, change metadata, delete, restore, purge.
New values (and rollbacks) are `core.writes`; value reads, `core.reads`; versions,
`core.versions`.

Values go to the storage backend *before* the metadata transaction that points at them, and a
value whose transaction fails is destroyed again, so there is never a version row without a
stored value, nor a stored value left without a row. No database transaction is held open while
a backend is called.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from core.access import access_query, authorize, confirm_caller
from core.audit import Attempt, AuditTrail
from core.audited_commit import commit_audited
from core.backends import BackendRegistry
from core.domain.access import Action
from core.domain.audit import AuditAction
from core.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from core.domain.paging import Page, PageRequest, Slice
from core.domain.secrets import (
    ListPosition,
    Secret,
    SecretFilter,
    VersionState,
)
from core.domain.values import Principal, ScopeRef, SecretValue, VersionKey
from core.policy import SecretPolicy, ValueChecksum
from core.scopes import place
from core.secret_access import audit_place, check_revision, load_secret, secret_target
from core.stored_values import discard_value, store_value
from core.types import TypeRegistry, kept_derived_tags, typed_metadata
from ports.security import Clock
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class NewSecret:
    scope: ScopeRef
    name: str
    parent: ScopeRef | None = None
    environment: str | None = None
    type: str = "generic"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    consumer: str = "other"
    expires_at: datetime | None = None
    not_before: datetime | None = None
    max_versions: int | None = None
    backend: str | None = None


@dataclass(frozen=True)
class MetadataChanges:
    """Fields to change; None leaves a field as it is, `clear` names fields to empty."""

    description: str | None = None
    tags: dict[str, str] | None = None
    consumer: str | None = None
    expires_at: datetime | None = None
    not_before: datetime | None = None
    max_versions: int | None = None
    clear: frozenset[str] = frozenset()


CHANGEABLE = ("description", "tags", "consumer", "expires_at", "not_before", "max_versions")
CLEARABLE = frozenset({"expires_at", "not_before", "max_versions"})


class SecretService:
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

    # -- metadata --------------------------------------------------------------------------

    def get_secret(
        self, actor: Principal, secret_id: UUID, *, include_deleted: bool = False
    ) -> Secret:
        with self._audit.attempt(
            actor, AuditAction.SECRET_READ_METADATA, f"secret:{secret_id}"
        ) as attempt:
            with self._uow_factory(read_only=True) as uow:
                secret = self._load(
                    uow,
                    actor,
                    Action.LIST,
                    secret_id,
                    attempt,
                    include_deleted=include_deleted,
                )
            attempt.succeed_durably()
            return secret

    def find_secret(
        self, actor: Principal, scope: ScopeRef, name: str, environment: str | None
    ) -> Secret:
        env = f" ({environment})" if environment else ""
        missing = f"no secret '{name}'{env} in scope {scope}"
        resource = f"secret:{scope}/{name}" + (f"@{environment}" if environment else "")
        with self._audit.attempt(actor, AuditAction.SECRET_READ_METADATA, resource) as attempt:
            with self._uow_factory(read_only=True) as uow:
                secret = uow.secrets.get_by_name(scope, environment, name)
                if secret is None or secret.is_deleted:
                    raise NotFound(missing)
                attempt.learn(**audit_place(secret))
                try:
                    authorize(uow, actor, Action.LIST, secret_target(secret), self._clock.now())
                except NotFound:  # the same answer as for no secret at all, without its id
                    raise NotFound(missing) from None
            attempt.succeed_durably(resource=f"secret:{secret.id}")
            return secret

    def list_secrets(
        self, actor: Principal, criteria: SecretFilter, page: PageRequest
    ) -> Page[Secret]:
        if page.page < 1 or not 1 <= page.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(
                f"page starts at 1 and page_size is between 1 and {MAX_PAGE_SIZE}",
                details={"field": "page"},
            )
        now = self._clock.now()
        scope = str(criteria.scope) if criteria.scope else None
        with self._audit.attempt(actor, AuditAction.SECRET_LIST, "secrets", scope=scope) as attempt:
            with self._uow_factory(read_only=True) as uow:
                confirm_caller(uow, actor, now)
                found = uow.secrets.search(criteria, page, access_query(actor, Action.LIST, now))
            attempt.succeed_durably(details={"total": found.total, "page": page.page})
            return found

    def list_secrets_after(
        self,
        actor: Principal,
        criteria: SecretFilter,
        after: ListPosition | None,
        page_size: int,
    ) -> Slice[Secret, ListPosition]:
        """Keyset paging of one scope's list: the page after `after` (the first if None), with
        `next` for the following one; no total is counted. The same visibility as
        `list_secrets`: a position only names a place, so any position is safe to accept."""
        if criteria.scope is None:
            raise InvalidInput(
                "paging with after lists one scope: give scope_type and scope_id",
                details={"field": "after"},
            )
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(
                f"page_size is between 1 and {MAX_PAGE_SIZE}", details={"field": "page_size"}
            )
        now = self._clock.now()
        scope = str(criteria.scope)
        with self._audit.attempt(actor, AuditAction.SECRET_LIST, "secrets", scope=scope) as attempt:
            with self._uow_factory(read_only=True) as uow:
                confirm_caller(uow, actor, now)
                found = uow.secrets.search_after(
                    criteria, after, page_size, access_query(actor, Action.LIST, now)
                )
            attempt.succeed_durably(details={"count": len(found.items), "after": after is not None})
            return found

    # -- writing ---------------------------------------------------------------------------

    def create_secret(self, actor: Principal, draft: NewSecret, value: SecretValue) -> Secret:
        self._policy.check_name(draft.name)
        self._types.require(draft.type)
        self._policy.check_metadata(
            environment=draft.environment,
            consumer=draft.consumer,
            tags=draft.tags,
            description=draft.description,
            max_versions=draft.max_versions,
            not_before=draft.not_before,
            expires_at=draft.expires_at,
        )
        with self._audit.attempt(
            actor,
            AuditAction.SECRET_CREATE,
            f"scope:{draft.scope}",
            scope=str(draft.scope),
            details={"name": draft.name, "environment": draft.environment},
        ) as attempt:
            return self._create(actor, draft, value, attempt)

    def _create(
        self, actor: Principal, draft: NewSecret, value: SecretValue, attempt: Attempt
    ) -> Secret:
        now = self._clock.now()
        with self._uow_factory() as uow:
            placement = place(uow, actor, draft.scope, draft.parent, now, draft.name)
            attempt.learn(scope_path=placement.path)
            existing = uow.secrets.get_by_name(draft.scope, draft.environment, draft.name)
        if existing is not None:
            raise self._name_taken(existing)
        backend = self._backends.get(draft.backend or self._backends.default)
        self._policy.check_value(value, backend.capabilities.max_value_bytes, backend.name)
        typed = typed_metadata(draft.tags, draft.expires_at, self._types.check(draft.type, value))

        secret = Secret(
            id=uuid.uuid4(),
            scope=draft.scope,
            name=draft.name,
            environment=draft.environment,
            type=draft.type,
            description=draft.description,
            consumer=draft.consumer,
            backend=backend.name,
            current_version=1,
            not_before=draft.not_before,
            max_versions=draft.max_versions,
            created_at=now,
            created_by=actor.id,
            **typed,
        )
        record = store_value(backend, self._checksum, secret.id, 1, value, actor, now)
        details = {**attempt.event.details, "value_hmac": record.checksum}

        def add(uow: UnitOfWork) -> tuple[Secret, dict[str, Any]]:
            scope = placement.create_if_missing(uow)
            uow.secrets.add(secret)
            uow.secrets.add_version(record)
            resource = f"secret:{secret.id}"
            fields = {"resource": resource, "scope_path": scope.path, "version": 1}
            return replace(secret, scope_path=scope.path), fields | {"details": details}

        try:
            return commit_audited(self._uow_factory, attempt, add)
        except BaseException:
            discard_value(backend, record)
            raise

    def update_metadata(
        self,
        actor: Principal,
        secret_id: UUID,
        changes: MetadataChanges,
        *,
        expected_revision: int | None = None,
    ) -> Secret:
        unknown = changes.clear - CLEARABLE
        if unknown:
            raise InvalidInput(
                f"cannot clear {', '.join(sorted(unknown))}", details={"field": "clear"}
            )

        def update(uow: UnitOfWork) -> tuple[Secret, dict[str, Any]]:
            secret = self._load(uow, actor, Action.WRITE, secret_id, attempt, lock=True)
            check_revision(secret, expected_revision)
            fields = {
                name: getattr(changes, name)
                for name in CHANGEABLE
                if getattr(changes, name) is not None
            }
            fields.update({name: None for name in changes.clear})
            if changes.tags is not None:
                fields["tags"] = kept_derived_tags(changes.tags, secret.tags)
            updated = secret.changed(actor, self._clock.now(), **fields)
            self._policy.check_metadata(
                consumer=updated.consumer,
                tags=updated.tags,
                description=updated.description,
                max_versions=updated.max_versions,
                not_before=updated.not_before,
                expires_at=updated.expires_at,
            )
            uow.secrets.update(updated, expected_revision=secret.revision)
            return updated, {"details": {"changed": sorted(fields)}}

        with self._audit.attempt(
            actor, AuditAction.SECRET_UPDATE, f"secret:{secret_id}"
        ) as attempt:
            return commit_audited(self._uow_factory, attempt, update)

    def delete_secret(
        self, actor: Principal, secret_id: UUID, *, expected_revision: int | None = None
    ) -> Secret:
        """Soft delete: hidden, name reserved, everything kept for the retention window."""

        def delete(uow: UnitOfWork) -> tuple[Secret, dict[str, Any]]:
            secret = self._load(uow, actor, Action.WRITE, secret_id, attempt, lock=True)
            check_revision(secret, expected_revision)
            now = self._clock.now()
            deleted = secret.soft_delete(actor, now, timedelta(days=self._policy.retention_days))
            uow.secrets.update(deleted, expected_revision=secret.revision)
            return deleted, {}

        with self._audit.attempt(
            actor, AuditAction.SECRET_DELETE, f"secret:{secret_id}"
        ) as attempt:
            return commit_audited(self._uow_factory, attempt, delete)

    def restore_secret(
        self, actor: Principal, secret_id: UUID, *, expected_revision: int | None = None
    ) -> Secret:
        """Undo a soft delete, unless the retention window is over (a purge may be running)."""

        def restore(uow: UnitOfWork) -> tuple[Secret, dict[str, Any]]:
            secret = self._load_deleted(uow, actor, Action.WRITE, secret_id, attempt)
            check_revision(secret, expected_revision)
            if secret.purge_after is not None and self._clock.now() >= secret.purge_after:
                raise Conflict(
                    f"secret {secret_id} is past its retention window and is being purged",
                    details={"purge_after": secret.purge_after.isoformat()},
                )
            restored = secret.restore(actor, self._clock.now())
            uow.secrets.update(restored, expected_revision=secret.revision)
            return restored, {}

        with self._audit.attempt(
            actor, AuditAction.SECRET_RESTORE, f"secret:{secret_id}"
        ) as attempt:
            return commit_audited(self._uow_factory, attempt, restore)

    def purge_secret(
        self, actor: Principal, secret_id: UUID, *, expected_revision: int | None = None
    ) -> None:
        """Destroy a soft-deleted secret's values in their backends, then its rows.

        First the retention window is closed (`purge_after` = now, a check-and-set), so that a
        restore racing with the purge either wins before it or is refused after it. Destroying
        is idempotent, so a purge interrupted after the backends and before the rows is
        finished by purging again.
        """
        with self._audit.attempt(actor, AuditAction.SECRET_PURGE, f"secret:{secret_id}") as attempt:
            self._purge(actor, secret_id, attempt, expected_revision)

    def _purge(
        self, actor: Principal, secret_id: UUID, attempt: Attempt, expected_revision: int | None
    ) -> None:
        with self._uow_factory() as uow:
            secret = self._load_deleted(uow, actor, Action.ADMIN, secret_id, attempt)
            check_revision(secret, expected_revision)
            versions = uow.secrets.list_versions(secret_id)
            now = self._clock.now()
            if secret.purge_after is None or secret.purge_after > now:
                closed = secret.close_retention(now)
                uow.secrets.update(closed, expected_revision=secret.revision)
                uow.commit()
        for record in versions:
            if record.state is not VersionState.DESTROYED:
                key = VersionKey(secret_id, record.version)
                self._backends.get(record.backend).destroy(key, record.locator)
        for backend_name in {record.backend for record in versions} | {secret.backend}:
            self._backends.get(backend_name).purge(secret_id)

        def delete_rows(uow: UnitOfWork) -> tuple[None, dict[str, Any]]:
            uow.secrets.delete(secret_id)
            return None, {"details": {"versions": len(versions)}}

        commit_audited(self._uow_factory, attempt, delete_rows)

    # -- helpers ---------------------------------------------------------------------------

    def _load(
        self,
        uow: UnitOfWork,
        actor: Principal,
        action: Action,
        secret_id: UUID,
        attempt: Attempt,
        **options: bool,
    ) -> Secret:
        return load_secret(uow, actor, action, secret_id, attempt, self._clock.now(), **options)

    def _load_deleted(
        self, uow: UnitOfWork, actor: Principal, action: Action, secret_id: UUID, attempt: Attempt
    ) -> Secret:
        secret = self._load(
            uow,
            actor,
            action,
            secret_id,
            attempt,
            include_deleted=True,
            lock=True,
        )
        if not secret.is_deleted:
            raise Conflict(
                f"secret {secret_id} is not deleted; delete it first",
                details={"state": "live"},
            )
        return secret

    @staticmethod
    def _name_taken(existing: Secret) -> Conflict:
        env = f" ({existing.environment})" if existing.environment else ""
        where = f"'{existing.name}'{env} in scope {existing.scope}"
        if existing.is_deleted:
            return Conflict(
                f"secret {where} is deleted but its name stays reserved; restore or purge it",
                details={"id": str(existing.id), "deleted": True},
            )
        return Conflict(f"secret {where} already exists", details={"id": str(existing.id)})
