"""The secret repository (`ports.repositories.secrets`) on SQLAlchemy Core, inside the caller's
transaction: secrets and their versions' metadata (values live in the backends; the local
backend's ciphertext, joined for one-statement reads, in `adapters.db.local_values`).

It never commits: `SqlUnitOfWork` owns the connection and its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from adapters.db.local_values import holds_value_of, row_of_value, store_sealed, stored_value
from adapters.db.scope_repository import SCOPE_ORDER
from adapters.db.secret_rows import (
    READ_BY_ID,
    READ_BY_PATH,
    READ_PREFIX,
    RESOLVE,
    SECRET_WITH_SCOPE,
    SELECT_LISTED,
    SELECT_SECRET,
    SELECT_VERSION,
    VERSION_STATE_COLUMNS,
    filter_conditions,
    listed_secrets,
    mutable_values,
    scope_is,
    secret_from_row,
    stored_environment,
    version_from_row,
    version_row,
)
from adapters.db.tables import (
    rotation_policies,
    scopes,
    secrets,
    versions,
)
from adapters.db.visibility import bound_parameters, visible
from core.domain.access import AccessQuery
from core.domain.errors import Conflict, NotFound, PreconditionFailed
from core.domain.paging import Page, PageRequest, Slice
from core.domain.secrets import (
    ListPosition,
    ResolveCandidate,
    Secret,
    SecretFilter,
    SecretVersion,
    Stage,
)
from core.domain.values import ScopeRef
from ports.repositories.secrets import SecretRepository

# The write path's statements, built once: a statement built per call costs more CPU (its
# clauses coerced, its cache key computed) than the round trip it makes.
GET_SECRET = SELECT_SECRET.where(secrets.c.id == bindparam("secret_id"))
LOCK_SECRET = GET_SECRET.with_for_update(of=secrets)
UPDATE_SECRET = update(secrets).where(
    secrets.c.id == bindparam("match_id"), secrets.c.revision == bindparam("match_revision")
)
INSERT_VERSION = insert(versions)


class SqlSecretRepository(SecretRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        # The secrets this unit of work wrote, as written: its rows are locked by that write
        # until the transaction ends, so reading one again (the change feed's record of the
        # write) needs no round trip. Forgotten by whatever else changes those rows here.
        self._written: dict[UUID, Secret] = {}

    def add(self, secret: Secret) -> None:
        scope_pk = self._connection.execute(
            select(scopes.c.pk).where(scope_is(secret.scope))
        ).scalar_one_or_none()
        if scope_pk is None:
            raise NotFound(f"no scope {secret.scope}", details={"scope": str(secret.scope)})
        statement = insert(secrets).values(
            id=secret.id,
            scope_pk=scope_pk,
            name=secret.name,
            environment=stored_environment(secret.environment),
            type=secret.type,
            created_at=secret.created_at,
            created_by=secret.created_by,
            **mutable_values(secret),
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
        written = self._written.get(secret_id)
        if written is not None:
            return written
        row = self._connection.execute(GET_SECRET, {"secret_id": secret_id}).first()
        return None if row is None else secret_from_row(row)

    def lock(self, secret_id: UUID) -> Secret | None:
        if self._connection.dialect.name == "sqlite":
            # SQLite locks the database, not rows: a first write takes its one write lock (and
            # begins the transaction there, so what is read next is the latest).
            self._connection.execute(
                update(secrets).where(secrets.c.id == secret_id).values(revision=secrets.c.revision)
            )
            return self.get(secret_id)
        row = self._connection.execute(LOCK_SECRET, {"secret_id": secret_id}).first()
        return None if row is None else secret_from_row(row)

    def get_by_name(self, scope: ScopeRef, environment: str | None, name: str) -> Secret | None:
        row = self._connection.execute(
            SELECT_SECRET.where(
                scope_is(scope),
                secrets.c.environment == stored_environment(environment),
                secrets.c.name == name,
            )
        ).first()
        return None if row is None else secret_from_row(row)

    def get_with_version(
        self, secret_id: UUID, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        return _read(self._connection, READ_BY_ID, {"read_id": secret_id, "read_version": version})

    def get_by_name_with_version(
        self, scope: ScopeRef, environment: str | None, name: str, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        parameters = {
            "read_scope_type": scope.type.value,
            "read_scope_id": scope.id,
            "read_environment": stored_environment(environment),
            "read_name": name,
            "read_version": version,
        }
        return _read(self._connection, READ_BY_PATH, parameters)

    def update(self, secret: Secret, expected_revision: int) -> None:
        self._written.pop(secret.id, None)
        parameters = {"match_id": secret.id, "match_revision": expected_revision}
        result = self._connection.execute(UPDATE_SECRET, parameters | mutable_values(secret))
        if result.rowcount == 0:
            current = self._connection.execute(
                select(secrets.c.revision).where(secrets.c.id == secret.id)
            ).scalar_one_or_none()
            raise PreconditionFailed(
                f"secret {secret.id} is no longer at revision {expected_revision}",
                details={} if current is None else {"revision": current},
            )
        self._written[secret.id] = secret

    def delete(self, secret_id: UUID) -> None:
        self._written.pop(secret_id, None)
        self._connection.execute(delete(versions).where(versions.c.secret_id == secret_id))
        self._connection.execute(
            delete(rotation_policies).where(rotation_policies.c.secret_id == secret_id)
        )
        self._connection.execute(delete(secrets).where(secrets.c.id == secret_id))

    def search(
        self, criteria: SecretFilter, page: PageRequest, access: AccessQuery
    ) -> Page[Secret]:
        conditions = filter_conditions(criteria)
        order: tuple[Any, ...] = (*SCOPE_ORDER, secrets.c.name, secrets.c.environment)
        if criteria.scope is not None:
            if not _in_one_scope(self._connection, criteria.scope, access, conditions):
                return Page(items=[], total=0, page=page.page, page_size=page.page_size)
            order = (secrets.c.name, secrets.c.environment)
        else:
            conditions.append(visible(access, secret_id=secrets.c.id, name=secrets.c.name))
        total = self._connection.execute(
            select(func.count()).select_from(SECRET_WITH_SCOPE).where(*conditions)
        ).scalar_one()
        rows = self._connection.execute(
            SELECT_LISTED.where(*conditions)
            .order_by(*order)
            .limit(page.page_size)
            .offset(page.offset)
        )
        return Page(
            items=listed_secrets(rows),
            total=total,
            page=page.page,
            page_size=page.page_size,
        )

    def search_after(
        self,
        criteria: SecretFilter,
        after: ListPosition | None,
        page_size: int,
        access: AccessQuery,
    ) -> Slice[Secret, ListPosition]:
        if criteria.scope is None:
            raise ValueError("keyset paging lists one scope")
        conditions = filter_conditions(criteria)
        if not _in_one_scope(self._connection, criteria.scope, access, conditions):
            return Slice(items=[], page_size=page_size, next=None)
        if after is not None:
            # A row comparison in the index's order: the scan starts right after the position.
            conditions.append(
                tuple_(secrets.c.name, secrets.c.environment)
                > tuple_(literal(after.name), literal(after.environment))
            )
        rows = self._connection.execute(
            SELECT_LISTED.where(*conditions)
            .order_by(secrets.c.name, secrets.c.environment)
            .limit(page_size + 1)  # one more tells whether a next page exists
        )
        items = listed_secrets(rows)
        more = len(items) > page_size
        del items[page_size:]
        return Slice(
            items=items,
            page_size=page_size,
            next=ListPosition.of(items[-1]) if more else None,
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
            current_version = version_from_row(row, prefix="v_", stage=Stage.CURRENT.value)
            if holds_value_of(row, current_version):
                if row.value_readable:
                    current_version = stored_value(row, current_version)
            elif row.id in candidates:
                continue  # a stray ciphertext row of an interrupted write: not this version's
            candidates[row.id] = ResolveCandidate(
                secret=secret_from_row(row),
                current=current_version,
                value_readable=bool(row.value_readable),
            )
        return list(candidates.values())

    def add_version(self, version: SecretVersion) -> None:
        try:
            self._connection.execute(INSERT_VERSION, version_row(version))
        except IntegrityError:
            raise Conflict(
                f"secret {version.secret_id} already has a version {version.version}",
                details={"version": version.version},
            ) from None
        store_sealed(self._connection, version)  # sealed by the local backend: stored now

    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        row = self._connection.execute(
            SELECT_VERSION.where(versions.c.secret_id == secret_id, versions.c.version == version)
        ).first()
        return None if row is None else version_from_row(row)

    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        rows = self._connection.execute(
            SELECT_VERSION.where(versions.c.secret_id == secret_id).order_by(versions.c.version)
        )
        return [version_from_row(row) for row in rows]

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
                select(scopes.c.pk).where(scope_is(ref))
            ).scalar_one_or_none()
            if scope_pks[ref] is None:
                raise NotFound(f"no scope {ref}", details={"scope": str(ref)})
        rows = [
            {
                "id": secret.id,
                "scope_pk": scope_pks[secret.scope],
                "name": secret.name,
                "environment": stored_environment(secret.environment),
                "type": secret.type,
                "created_at": secret.created_at,
                "created_by": secret.created_by,
                **mutable_values(secret),
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
        for secret, _ in updates:
            self._written.pop(secret.id, None)
        rows = [
            {"match_id": secret.id, "match_revision": revision, **mutable_values(secret)}
            for secret, revision in updates
        ]
        result = self._connection.execute(UPDATE_SECRET, rows)
        if result.rowcount != len(updates):
            raise PreconditionFailed(
                f"{len(updates) - result.rowcount} of {len(updates)} secrets are no longer at "
                "the revision they were read at"
            )

    def add_versions(self, new: Sequence[SecretVersion]) -> None:
        """One INSERT for every version."""
        if not new:
            return
        try:
            self._connection.execute(insert(versions), [version_row(version) for version in new])
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
            found.update((row.secret_id, version_from_row(row)) for row in rows)
        return found


def _in_one_scope(
    connection: Connection,
    scope: ScopeRef,
    access: AccessQuery,
    conditions: list[ColumnElement[bool]],
) -> bool:
    """Narrow `conditions` to the rows of one scope the caller may see; False if the scope
    does not exist. Is all of it visible to the caller (the same rule without a secret)?
    Then no row needs a check of its own, and a page is read in order from the index
    (scope_pk, name, environment) of live rows, stopping after the page."""
    found = connection.execute(select(scopes.c.pk, visible(access)).where(scope_is(scope))).first()
    if found is None:
        return False
    conditions.append(secrets.c.scope_pk == found[0])
    if not found[1]:
        conditions.append(visible(access, secret_id=secrets.c.id, name=secrets.c.name))
    return True


def _read(
    connection: Connection, statement: Select[Any], parameters: dict[str, Any]
) -> tuple[Secret, SecretVersion | None] | None:
    """A secret with one version and, when the local backend holds the value, its ciphertext,
    in one statement (`READ_BY_ID`, `READ_BY_PATH`)."""
    rows = connection.execute(statement, parameters).all()
    if not rows:
        return None
    row = row_of_value(rows, READ_PREFIX + "locator")
    secret = secret_from_row(row)
    if row.v_version is None:
        return secret, None
    return secret, stored_value(row, version_from_row(row, READ_PREFIX))
