"""The repositories of `ports.repositories` on SQLAlchemy Core, inside the caller's transaction.

They never commit: `SqlUnitOfWork` owns the connection and its transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    Uuid,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from adapters.crypto import key_id_of
from adapters.db.tables import (
    encrypted_values,
    role_bindings,
    rotation_policies,
    scopes,
    secrets,
    service_accounts,
    versions,
)
from adapters.db.visibility import bound_parameters, visible, visible_bound
from core.domain.access import AccessQuery
from core.domain.errors import Conflict, NotFound, PreconditionFailed
from core.domain.paging import Page, PageRequest
from core.domain.scopes import Scope, ScopeUsage
from core.domain.secrets import (
    ResolveCandidate,
    Secret,
    SecretFilter,
    SecretVersion,
    Stage,
    VersionState,
)
from core.domain.values import ScopeRef, ScopeType
from ports.repositories.scopes import ScopeRepository
from ports.repositories.secrets import SecretRepository

# The columns `update` may change; id, scope, name, environment, type and creation never change.
MUTABLE_COLUMNS = (
    "description",
    "tags",
    "consumer",
    "backend",
    "current_version",
    "expires_at",
    "not_before",
    "max_versions",
    "updated_at",
    "updated_by",
    "deleted_at",
    "purge_after",
    "revision",
    "latest_version",
    "previous_version",
    "pending_version",
)

SECRET_WITH_SCOPE = secrets.join(scopes, secrets.c.scope_pk == scopes.c.pk)
SELECT_SECRET = select(
    secrets,
    scopes.c.type.label("scope_type"),
    scopes.c.external_id.label("scope_external_id"),
    scopes.c.path.label("scope_path"),
).select_from(SECRET_WITH_SCOPE)
SCOPE_ORDER = (scopes.c.type, scopes.c.external_id)
# A scope with its parent's name (none for the global scope).
PARENT_SCOPE = scopes.alias("parent_scope")
SELECT_SCOPE = select(
    scopes,
    PARENT_SCOPE.c.type.label("parent_type"),
    PARENT_SCOPE.c.external_id.label("parent_id"),
).select_from(scopes.outerjoin(PARENT_SCOPE, scopes.c.parent_pk == PARENT_SCOPE.c.pk))
# A version with its stage label, which the secret's pointers give.
STAGE = case(
    (versions.c.version == secrets.c.current_version, Stage.CURRENT.value),
    (versions.c.version == secrets.c.pending_version, Stage.PENDING.value),
    (versions.c.version == secrets.c.previous_version, Stage.PREVIOUS.value),
    else_=None,
).label("stage")
SELECT_VERSION = select(versions, STAGE).select_from(
    versions.join(secrets, versions.c.secret_id == secrets.c.id)
)
# A secret with one version and, when the local backend holds it, its ciphertext: everything a
# value read needs from the database in one statement (the caller's bindings aside).
READ_PREFIX = "v_"
SELECT_FOR_READ = select(
    secrets,
    scopes.c.type.label("scope_type"),
    scopes.c.external_id.label("scope_external_id"),
    scopes.c.path.label("scope_path"),
    *(column.label(READ_PREFIX + column.name) for column in versions.c),
    STAGE,
    encrypted_values.c.id.label("stored_id"),
    encrypted_values.c.blob.label("stored_blob"),
)
# Resolution's aliases and labels, built once (making them is costly, and it runs per request).
RESOLVE_CONTEXT = scopes.alias("context")
RESOLVE_CURRENT = versions.alias("current")
RESOLVE_CURRENT_COLUMNS = tuple(column.label(f"v_{column.name}") for column in RESOLVE_CURRENT.c)
# The two value-read statements, built once; `read_version` NULL means the current version.
READ_JOINED = SECRET_WITH_SCOPE.outerjoin(
    versions,
    (versions.c.secret_id == secrets.c.id)
    & (
        versions.c.version
        == func.coalesce(bindparam("read_version", type_=Integer), secrets.c.current_version)
    ),
).outerjoin(
    encrypted_values,
    (encrypted_values.c.secret_id == versions.c.secret_id)
    & (encrypted_values.c.version == versions.c.version),
)
READ_BY_ID = SELECT_FOR_READ.select_from(READ_JOINED).where(
    secrets.c.id == bindparam("read_id", type_=Uuid)
)
READ_BY_PATH = SELECT_FOR_READ.select_from(READ_JOINED).where(
    scopes.c.type == bindparam("read_scope_type"),
    scopes.c.external_id == bindparam("read_scope_id"),
    secrets.c.environment == bindparam("read_environment"),
    secrets.c.name == bindparam("read_name"),
)
# Resolution in one statement built once: the context's scopes, the environments and both access
# queries (who may see, who may read the value) are bound parameters.
RESOLVE = (
    SELECT_SECRET.add_columns(
        *RESOLVE_CURRENT_COLUMNS,
        visible_bound("read_", scopes, secrets.c.id, secrets.c.name).label("value_readable"),
        encrypted_values.c.id.label("stored_id"),
        encrypted_values.c.blob.label("stored_blob"),
    )
    .join(
        RESOLVE_CURRENT,
        (RESOLVE_CURRENT.c.secret_id == secrets.c.id)
        & (RESOLVE_CURRENT.c.version == secrets.c.current_version),
    )
    .outerjoin(  # the ciphertext, for values kept in the service's own database
        encrypted_values,
        (encrypted_values.c.secret_id == RESOLVE_CURRENT.c.secret_id)
        & (encrypted_values.c.version == RESOLVE_CURRENT.c.version),
    )
    .where(
        secrets.c.deleted_at.is_(None),
        secrets.c.environment.in_(bindparam("environments", expanding=True)),
        exists(
            select(1)
            .select_from(RESOLVE_CONTEXT)
            .where(
                tuple_(RESOLVE_CONTEXT.c.type, RESOLVE_CONTEXT.c.external_id).in_(
                    bindparam("context", expanding=True)
                ),
                RESOLVE_CONTEXT.c.path.startswith(scopes.c.path),
            )
        ),
        visible_bound("see_", scopes, secrets.c.id, secrets.c.name),
    )
)
VERSION_STATE_COLUMNS = ("state", "expires_at", "not_before", "disable_at")


def _scope_is(ref: ScopeRef) -> ColumnElement[bool]:
    return (scopes.c.type == ref.type.value) & (scopes.c.external_id == ref.id)


def _stored_environment(environment: str | None) -> str:
    """The column holds '' for "every environment" (see tables.py); the domain holds None."""
    return environment or ""


class SqlScopeRepository(ScopeRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, ref: ScopeRef) -> Scope | None:
        row = self._connection.execute(SELECT_SCOPE.where(_scope_is(ref))).first()
        return None if row is None else _scope_from_row(row)

    def add(self, ref: ScopeRef, parent: Scope | None) -> Scope:
        created_at = datetime.now(UTC)
        statement = insert(scopes).values(
            type=ref.type.value,
            external_id=ref.id,
            parent_pk=parent.pk if parent else None,
            created_at=created_at,
            path="",
        )
        try:
            pk = self._connection.execute(statement).inserted_primary_key.pk
        except IntegrityError:
            raise Conflict(f"scope {ref} already exists", details={"scope": str(ref)}) from None
        path = f"{parent.path if parent else '/'}{pk}/"
        self._connection.execute(update(scopes).where(scopes.c.pk == pk).values(path=path))
        return Scope(
            pk=pk,
            ref=ref,
            path=path,
            parent_pk=parent.pk if parent else None,
            created_at=created_at,
            parent=parent.ref if parent else None,
        )

    def search(self, scope_type: str | None, access: AccessQuery, page: PageRequest) -> Page[Scope]:
        conditions = [visible(access)]
        if scope_type is not None:
            conditions.append(scopes.c.type == scope_type)
        total = self._connection.execute(
            select(func.count()).select_from(scopes).where(*conditions)
        ).scalar_one()
        rows = self._connection.execute(
            SELECT_SCOPE.where(*conditions)
            .order_by(*SCOPE_ORDER)
            .limit(page.page_size)
            .offset(page.offset)
        )
        items = [_scope_from_row(row) for row in rows]
        return Page(items=items, total=total, page=page.page, page_size=page.page_size)

    def usage(self, scope: Scope) -> ScopeUsage:
        def count(table: Any, column: Any) -> int:
            statement = select(func.count()).select_from(table).where(column == scope.pk)
            return int(self._connection.execute(statement).scalar_one())

        return ScopeUsage(
            children=count(scopes, scopes.c.parent_pk),
            secrets=count(secrets, secrets.c.scope_pk),
            service_accounts=count(service_accounts, service_accounts.c.scope_pk),
        )

    def delete(self, scope: Scope) -> None:
        self._connection.execute(delete(role_bindings).where(role_bindings.c.scope_pk == scope.pk))
        try:
            self._connection.execute(delete(scopes).where(scopes.c.pk == scope.pk))
        except IntegrityError:  # something was added to the scope since its usage was counted
            raise Conflict(
                f"scope {scope.ref} is not empty", details={"scope": str(scope.ref)}
            ) from None


class SqlSecretRepository(SecretRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, secret: Secret) -> None:
        scope_pk = self._connection.execute(
            select(scopes.c.pk).where(_scope_is(secret.scope))
        ).scalar_one_or_none()
        if scope_pk is None:
            raise NotFound(f"no scope {secret.scope}", details={"scope": str(secret.scope)})
        statement = insert(secrets).values(
            id=secret.id,
            scope_pk=scope_pk,
            name=secret.name,
            environment=_stored_environment(secret.environment),
            type=secret.type,
            created_at=secret.created_at,
            created_by=secret.created_by,
            **_mutable_values(secret),
        )
        try:
            self._connection.execute(statement)
        except IntegrityError:
            env = f" ({secret.environment})" if secret.environment else ""
            raise Conflict(
                f"secret '{secret.name}'{env} in scope {secret.scope} already exists",
                details={"scope": str(secret.scope), "name": secret.name},
            ) from None

    def get(self, secret_id: UUID) -> Secret | None:
        row = self._connection.execute(SELECT_SECRET.where(secrets.c.id == secret_id)).first()
        return None if row is None else _secret_from_row(row)

    def lock(self, secret_id: UUID) -> Secret | None:
        if self._connection.dialect.name == "sqlite":
            # SQLite locks the database, not rows: a first write takes its one write lock (and
            # begins the transaction there, so what is read next is the latest).
            self._connection.execute(
                update(secrets).where(secrets.c.id == secret_id).values(revision=secrets.c.revision)
            )
            return self.get(secret_id)
        row = self._connection.execute(
            SELECT_SECRET.where(secrets.c.id == secret_id).with_for_update(of=secrets)
        ).first()
        return None if row is None else _secret_from_row(row)

    def get_by_name(self, scope: ScopeRef, environment: str | None, name: str) -> Secret | None:
        row = self._connection.execute(
            SELECT_SECRET.where(
                _scope_is(scope),
                secrets.c.environment == _stored_environment(environment),
                secrets.c.name == name,
            )
        ).first()
        return None if row is None else _secret_from_row(row)

    def get_with_version(
        self, secret_id: UUID, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        return self._read(READ_BY_ID, {"read_id": secret_id, "read_version": version})

    def get_by_name_with_version(
        self, scope: ScopeRef, environment: str | None, name: str, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        parameters = {
            "read_scope_type": scope.type.value,
            "read_scope_id": scope.id,
            "read_environment": _stored_environment(environment),
            "read_name": name,
            "read_version": version,
        }
        return self._read(READ_BY_PATH, parameters)

    def _read(
        self, statement: Select[Any], parameters: dict[str, Any]
    ) -> tuple[Secret, SecretVersion | None] | None:
        rows = self._connection.execute(statement, parameters).all()
        if not rows:
            return None
        # More than one ciphertext row per version only after an interrupted write: the one
        # the version's locator names is the value.
        row = next((r for r in rows if str(r.stored_id) == r.v_locator), rows[0])
        secret = _secret_from_row(row)
        if row.v_version is None:
            return secret, None
        record = _version_from_row(row, READ_PREFIX)
        if row.stored_id is not None and str(row.stored_id) == record.locator:
            record = record.with_stored(bytes(row.stored_blob))
        return secret, record

    def update(self, secret: Secret, expected_revision: int) -> None:
        result = self._connection.execute(
            update(secrets)
            .where(secrets.c.id == secret.id, secrets.c.revision == expected_revision)
            .values(**_mutable_values(secret))
        )
        if result.rowcount == 0:
            current = self._connection.execute(
                select(secrets.c.revision).where(secrets.c.id == secret.id)
            ).scalar_one_or_none()
            raise PreconditionFailed(
                f"secret {secret.id} is no longer at revision {expected_revision}",
                details={} if current is None else {"revision": current},
            )

    def delete(self, secret_id: UUID) -> None:
        self._connection.execute(delete(versions).where(versions.c.secret_id == secret_id))
        self._connection.execute(
            delete(rotation_policies).where(rotation_policies.c.secret_id == secret_id)
        )
        self._connection.execute(delete(secrets).where(secrets.c.id == secret_id))

    def search(
        self, criteria: SecretFilter, page: PageRequest, access: AccessQuery
    ) -> Page[Secret]:
        conditions = [
            *_filter_conditions(criteria),
            visible(access, secret_id=secrets.c.id, name=secrets.c.name),
        ]
        total = self._connection.execute(
            select(func.count()).select_from(SECRET_WITH_SCOPE).where(*conditions)
        ).scalar_one()
        rows = self._connection.execute(
            SELECT_SECRET.where(*conditions)
            .order_by(*SCOPE_ORDER, secrets.c.name, secrets.c.environment)
            .limit(page.page_size)
            .offset(page.offset)
        )
        return Page(
            items=[_secret_from_row(row) for row in rows],
            total=total,
            page=page.page,
            page_size=page.page_size,
        )

    def resolve(
        self,
        scopes_in_context: Sequence[ScopeRef],
        environment: str | None,
        visible_to: AccessQuery,
        readable_by: AccessQuery,
    ) -> list[ResolveCandidate]:
        parameters = {
            "context": [(ref.type.value, ref.id) for ref in scopes_in_context],
            "environments": ["", environment] if environment else [""],
            **bound_parameters(visible_to, "see_"),
            **bound_parameters(readable_by, "read_"),
        }
        candidates: dict[UUID, ResolveCandidate] = {}
        for row in self._connection.execute(RESOLVE, parameters):
            current_version = _version_from_row(row, prefix="v_", stage=Stage.CURRENT.value)
            if row.stored_id is not None and str(row.stored_id) == current_version.locator:
                if row.value_readable:
                    current_version = current_version.with_stored(bytes(row.stored_blob))
            elif row.id in candidates:
                continue  # a stray ciphertext row of an interrupted write: not this version's
            candidates[row.id] = ResolveCandidate(
                secret=_secret_from_row(row),
                current=current_version,
                value_readable=bool(row.value_readable),
            )
        return list(candidates.values())

    def add_version(self, version: SecretVersion) -> None:
        statement = insert(versions).values(
            secret_id=version.secret_id,
            version=version.version,
            state=version.state.value,
            backend=version.backend,
            locator=version.locator,
            checksum=version.checksum,
            created_at=version.created_at,
            created_by=version.created_by,
            expires_at=version.expires_at,
            not_before=version.not_before,
            disable_at=version.disable_at,
        )
        try:
            self._connection.execute(statement)
        except IntegrityError:
            raise Conflict(
                f"secret {version.secret_id} already has a version {version.version}",
                details={"version": version.version},
            ) from None
        if version.stored is not None:  # sealed by the local backend: stored in this transaction
            self._connection.execute(
                insert(encrypted_values).values(
                    id=UUID(version.locator),
                    secret_id=version.secret_id,
                    version=version.version,
                    key_id=key_id_of(version.stored),
                    blob=version.stored,
                    created_at=version.created_at,
                )
            )

    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        row = self._connection.execute(
            SELECT_VERSION.where(versions.c.secret_id == secret_id, versions.c.version == version)
        ).first()
        return None if row is None else _version_from_row(row)

    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        rows = self._connection.execute(
            SELECT_VERSION.where(versions.c.secret_id == secret_id).order_by(versions.c.version)
        )
        return [_version_from_row(row) for row in rows]

    def update_version(self, version: SecretVersion) -> None:
        values = {column: getattr(version, column) for column in VERSION_STATE_COLUMNS}
        values["state"] = version.state.value
        result = self._connection.execute(
            update(versions)
            .where(versions.c.secret_id == version.secret_id, versions.c.version == version.version)
            .values(**values)
        )
        if result.rowcount == 0:
            raise NotFound(f"secret {version.secret_id} has no version {version.version}")

    def relocate_version(self, version: SecretVersion, backend: str, locator: str) -> None:
        result = self._connection.execute(
            update(versions)
            .where(
                versions.c.secret_id == version.secret_id,
                versions.c.version == version.version,
                versions.c.backend == version.backend,
                versions.c.locator == version.locator,
            )
            .values(backend=backend, locator=locator)
        )
        if result.rowcount == 0:
            raise PreconditionFailed(
                f"version {version.version} of secret {version.secret_id} has moved or is gone"
            )

    def add_many(self, new: Sequence[Secret]) -> None:
        """One scope lookup per scope and one INSERT for them all (an import of thousands)."""
        if not new:
            return
        scope_pks = {}
        for ref in {secret.scope for secret in new}:
            scope_pks[ref] = self._connection.execute(
                select(scopes.c.pk).where(_scope_is(ref))
            ).scalar_one_or_none()
            if scope_pks[ref] is None:
                raise NotFound(f"no scope {ref}", details={"scope": str(ref)})
        rows = [
            {
                "id": secret.id,
                "scope_pk": scope_pks[secret.scope],
                "name": secret.name,
                "environment": _stored_environment(secret.environment),
                "type": secret.type,
                "created_at": secret.created_at,
                "created_by": secret.created_by,
                **_mutable_values(secret),
            }
            for secret in new
        ]
        try:
            self._connection.execute(insert(secrets), rows)
        except IntegrityError:
            raise Conflict("a secret of the batch already exists in its scope") from None

    def update_many(self, updates: Sequence[tuple[Secret, int]]) -> None:
        """One executemany UPDATE, each row only at its expected revision."""
        if not updates:
            return
        statement = update(secrets).where(
            secrets.c.id == bindparam("match_id"),
            secrets.c.revision == bindparam("match_revision"),
        )
        rows = [
            {"match_id": secret.id, "match_revision": revision, **_mutable_values(secret)}
            for secret, revision in updates
        ]
        result = self._connection.execute(statement, rows)
        if result.rowcount != len(updates):
            raise PreconditionFailed(
                f"{len(updates) - result.rowcount} of {len(updates)} secrets are no longer at "
                "the revision they were read at"
            )

    def add_versions(self, new: Sequence[SecretVersion]) -> None:
        """One INSERT for every version."""
        if not new:
            return
        rows = [
            {
                "secret_id": version.secret_id,
                "version": version.version,
                "state": version.state.value,
                "backend": version.backend,
                "locator": version.locator,
                "checksum": version.checksum,
                "created_at": version.created_at,
                "created_by": version.created_by,
                "expires_at": version.expires_at,
                "not_before": version.not_before,
                "disable_at": version.disable_at,
            }
            for version in new
        ]
        try:
            self._connection.execute(insert(versions), rows)
        except IntegrityError:
            raise Conflict("a version of the batch exists already") from None

    def current_versions(self, secret_ids: Sequence[UUID]) -> dict[UUID, SecretVersion]:
        """A few queries of bounded IN lists, however many secrets."""
        found = {}
        for start in range(0, len(secret_ids), 500):
            rows = self._connection.execute(
                SELECT_VERSION.where(
                    versions.c.secret_id.in_(secret_ids[start : start + 500]),
                    versions.c.version == secrets.c.current_version,
                )
            )
            found.update((row.secret_id, _version_from_row(row)) for row in rows)
        return found


def _filter_conditions(criteria: SecretFilter) -> list[ColumnElement[bool]]:
    conditions = [
        secrets.c.deleted_at.is_not(None) if criteria.deleted else secrets.c.deleted_at.is_(None)
    ]
    if criteria.scope is not None:
        conditions.append(_scope_is(criteria.scope))
    if criteria.scope_type is not None:
        conditions.append(scopes.c.type == criteria.scope_type)
    if criteria.under_path is not None:
        conditions.append(scopes.c.path.startswith(criteria.under_path))
    if criteria.expires_before is not None:
        conditions.append(secrets.c.expires_at < criteria.expires_before)
    if criteria.created_before is not None:
        conditions.append(secrets.c.created_at < criteria.created_before)
    if criteria.rotation_overdue_at is not None:
        policy = rotation_policies.c
        conditions.append(
            exists(
                select(1).where(
                    policy.secret_id == secrets.c.id,
                    or_(
                        policy.next_run_at < criteria.rotation_overdue_at,
                        policy.last_status == "failed",
                    ),
                )
            )
        )
    if criteria.environment is not None:
        conditions.append(secrets.c.environment == criteria.environment)
    if criteria.type is not None:
        conditions.append(secrets.c.type == criteria.type)
    if criteria.prefix:
        # substr, not LIKE: SQLite's LIKE ignores case, and names are case-sensitive.
        prefix_length = len(criteria.prefix)
        conditions.append(func.substr(secrets.c.name, 1, prefix_length) == criteria.prefix)
    conditions.extend(
        secrets.c.tags[key].as_string() == value for key, value in criteria.tags.items()
    )
    return conditions


def _mutable_values(secret: Secret) -> dict[str, Any]:
    return {column: getattr(secret, column) for column in MUTABLE_COLUMNS}


def _secret_from_row(row: Row[Any]) -> Secret:
    return Secret.of_stored(
        {
            "id": row.id,
            "scope": ScopeRef(ScopeType(row.scope_type), row.scope_external_id),
            "name": row.name,
            "environment": row.environment or None,
            "scope_path": row.scope_path,
            "type": row.type,
            "description": row.description,
            "tags": dict(row.tags),
            "consumer": row.consumer,
            "backend": row.backend,
            "current_version": row.current_version,
            "expires_at": row.expires_at,
            "not_before": row.not_before,
            "max_versions": row.max_versions,
            "created_at": row.created_at,
            "created_by": row.created_by,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
            "deleted_at": row.deleted_at,
            "purge_after": row.purge_after,
            "revision": row.revision,
            "latest_version": row.latest_version,
            "previous_version": row.previous_version,
            "pending_version": row.pending_version,
        }
    )


VERSION_FIELDS = (
    "secret_id",
    "version",
    "backend",
    "locator",
    "checksum",
    "created_at",
    "created_by",
    "state",
    "expires_at",
    "not_before",
    "disable_at",
)


@functools.cache
def _version_keys(prefix: str) -> tuple[str, ...]:
    return tuple(prefix + name for name in VERSION_FIELDS)


def _version_from_row(row: Row[Any], prefix: str = "", stage: str | None = None) -> SecretVersion:
    """The version in `row`'s columns named `prefix` + field; its stage from the row's `stage`
    column, else `stage` (a row without that column: no lookup that misses, which is costly)."""
    field = row._mapping
    if stage is None:
        stage = field.get("stage")
    values = dict(zip(VERSION_FIELDS, map(field.__getitem__, _version_keys(prefix)), strict=True))
    values["state"] = VersionState(values["state"])
    values["stage"] = Stage(stage) if stage else None
    return SecretVersion.of_stored(values)


def _scope_from_row(row: Row[Any]) -> Scope:
    return Scope(
        pk=row.pk,
        ref=ScopeRef(ScopeType(row.type), row.external_id),
        path=row.path,
        parent_pk=row.parent_pk,
        created_at=row.created_at,
        parent=ScopeRef(ScopeType(row.parent_type), row.parent_id) if row.parent_type else None,
    )
