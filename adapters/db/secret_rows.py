"""The secret repository's statements and row mappings (SQLAlchemy Core): a secret with its
scope, a version with its stage, the one-statement value reads and resolution, and the rows
they give back as domain objects. The local backend's ciphertext is joined by
`adapters.db.local_values`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Text,
    Uuid,
    bindparam,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    tuple_,
)

from adapters.db.local_values import STORED_COLUMNS, with_stored
from adapters.db.tables import (
    rotation_policies,
    scopes,
    secrets,
    versions,
)
from adapters.db.visibility import visible_bound
from core.domain.secrets import (
    Secret,
    SecretFilter,
    SecretVersion,
    Stage,
    VersionState,
)
from core.domain.values import ScopeRef, ScopeType

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
# A listing's rows: exactly a secret's fields, in the order of `LISTED_FIELDS`, then its scope's
# type and id (tags as their JSON text: most are `{}`, which needs no parsing).
LISTED_FIELDS = (
    "id",
    "name",
    "environment",
    "type",
    "description",
    "tags",
    "consumer",
    "backend",
    "current_version",
    "expires_at",
    "not_before",
    "max_versions",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "deleted_at",
    "purge_after",
    "revision",
    "latest_version",
    "previous_version",
    "pending_version",
    "scope_path",
)
SELECT_LISTED = select(
    *(
        cast(secrets.c.tags, Text).label("tags") if name == "tags" else secrets.c[name]
        for name in LISTED_FIELDS[:-1]
    ),
    scopes.c.path.label("scope_path"),
    scopes.c.type.label("scope_type"),
    scopes.c.external_id.label("scope_external_id"),
).select_from(SECRET_WITH_SCOPE)
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
    *STORED_COLUMNS,
)
# Resolution's aliases and labels, built once (making them is costly, and it runs per request).
RESOLVE_CONTEXT = scopes.alias("context")
RESOLVE_CURRENT = versions.alias("current")
RESOLVE_CURRENT_COLUMNS = tuple(column.label(f"v_{column.name}") for column in RESOLVE_CURRENT.c)
# The two value-read statements, built once; `read_version` NULL means the current version.
READ_JOINED = with_stored(
    SECRET_WITH_SCOPE.outerjoin(
        versions,
        (versions.c.secret_id == secrets.c.id)
        & (
            versions.c.version
            == func.coalesce(bindparam("read_version", type_=Integer), secrets.c.current_version)
        ),
    ),
    versions,
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
RESOLVE = with_stored(  # the ciphertext, for values kept in the service's own database
    SELECT_SECRET.add_columns(
        *RESOLVE_CURRENT_COLUMNS,
        visible_bound("read_", scopes, secrets.c.id, secrets.c.name).label("value_readable"),
        *STORED_COLUMNS,
    ).join(
        RESOLVE_CURRENT,
        (RESOLVE_CURRENT.c.secret_id == secrets.c.id)
        & (RESOLVE_CURRENT.c.version == secrets.c.current_version),
    ),
    RESOLVE_CURRENT,
).where(
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
VERSION_STATE_COLUMNS = ("state", "expires_at", "not_before", "disable_at")


def scope_is(ref: ScopeRef) -> ColumnElement[bool]:
    return (scopes.c.type == ref.type.value) & (scopes.c.external_id == ref.id)


def stored_environment(environment: str | None) -> str:
    """The column holds '' for "every environment" (see tables.py); the domain holds None."""
    return environment or ""


def filter_conditions(criteria: SecretFilter) -> list[ColumnElement[bool]]:
    conditions = [
        secrets.c.deleted_at.is_not(None) if criteria.deleted else secrets.c.deleted_at.is_(None)
    ]
    if criteria.scope is not None:
        conditions.append(scope_is(criteria.scope))
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


def mutable_values(secret: Secret) -> dict[str, Any]:
    return {column: getattr(secret, column) for column in MUTABLE_COLUMNS}


def secret_from_row(row: Row[Any]) -> Secret:
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


def listed_secrets(rows: Iterable[Row[Any]]) -> list[Secret]:
    """The secrets of `SELECT_LISTED`'s rows: each built from its row's values in one step
    (`secret_from_row` looks up each column by name: a listing's main cost in Python)."""
    found = []
    scope_refs: dict[tuple[str, str], ScopeRef] = {}  # a page is mostly of one scope
    fields = LISTED_FIELDS
    loads = json.loads
    for row in rows:
        values = dict(zip(fields, row, strict=False))  # the scope's type and id follow
        key = (row[-2], row[-1])
        scope = scope_refs.get(key)
        if scope is None:
            scope = scope_refs[key] = ScopeRef(ScopeType(key[0]), key[1])
        values["scope"] = scope
        values["environment"] = values["environment"] or None
        tags = values["tags"]
        values["tags"] = {} if tags == "{}" else loads(tags)
        found.append(Secret.of_stored(values))
    return found


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


def version_from_row(row: Row[Any], prefix: str = "", stage: str | None = None) -> SecretVersion:
    """The version in `row`'s columns named `prefix` + field; its stage from the row's `stage`
    column, else `stage` (a row without that column: no lookup that misses, which is costly)."""
    field = row._mapping
    if stage is None:
        stage = field.get("stage")
    values = dict(zip(VERSION_FIELDS, map(field.__getitem__, _version_keys(prefix)), strict=True))
    values["state"] = VersionState(values["state"])
    values["stage"] = Stage(stage) if stage else None
    return SecretVersion.of_stored(values)


def version_row(version: SecretVersion) -> dict[str, Any]:
    """The version's columns, as inserted."""
    return {
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
