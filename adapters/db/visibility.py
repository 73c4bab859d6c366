"""Access control applied inside queries: which rows an `AccessQuery` lets a caller see.

Core decides *what* may be done (which roles grant an action, who owns a personal scope); this
turns that decision into SQL so that lists and resolutions filter and paginate in the database.
The rules are the same as `core.domain.access.RoleBinding.covers`, and the permission tests run
both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, bindparam, exists, false, or_, select

from adapters.db.tables import UTCDateTime, role_bindings, scopes
from core.domain.access import AccessQuery

LIKE_ESCAPE = "\\"
# Built once: an alias's columns are costly to make, and a query of every request uses these.
BINDING, BINDING_SCOPE = role_bindings.alias("b"), scopes.alias("bs")


def glob_to_like(pattern: str) -> str:
    """A `*`/`?` glob as an SQL LIKE pattern with `\\` as escape character."""
    escaped = (
        pattern.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return escaped.replace("*", "%").replace("?", "_")


def visible(
    access: AccessQuery,
    scope: Any = scopes,
    secret_id: ColumnElement[Any] | None = None,
    name: ColumnElement[Any] | None = None,
) -> ColumnElement[bool]:
    """True for rows of `scope` (and, if given, the secret `secret_id` / `name` in it) that
    the caller may act on. Without a secret, only bindings not narrowed to secrets count."""
    personal = scope.c.type == "user"
    owner = personal & (scope.c.external_id == access.user_id) if access.user_id else false()
    if access.unrestricted:
        return or_(owner, ~personal)
    binding, binding_scope = BINDING, BINDING_SCOPE
    conditions = [
        binding.c.principal.in_(access.identities),
        binding.c.role.in_(sorted(role.value for role in access.roles)),
        or_(binding.c.expires_at.is_(None), binding.c.expires_at > access.now),
        scope.c.path.startswith(binding_scope.c.path),
    ]
    if secret_id is not None and name is not None:
        conditions += [
            or_(binding.c.secret_id.is_(None), binding.c.secret_id == secret_id),
            or_(binding.c.name_like.is_(None), name.like(binding.c.name_like, escape=LIKE_ESCAPE)),
        ]
    else:  # as `RoleBinding.covers`: a binding narrowed to secrets does not cover the scope
        conditions += [binding.c.secret_id.is_(None), binding.c.name_like.is_(None)]
    granted = exists(
        select(1)
        .select_from(binding.join(binding_scope, binding.c.scope_pk == binding_scope.c.pk))
        .where(*conditions)
    )
    return or_(owner, ~personal & granted)


def visible_bound(
    prefix: str, scope: Any, secret_id: ColumnElement[Any], name: ColumnElement[Any]
) -> ColumnElement[bool]:
    """`visible` for secrets, with every fact of the `AccessQuery` a bound parameter (named
    with `prefix`; `bound_parameters` gives their values): one statement for every caller, so
    a statement built once serves each request."""
    personal = scope.c.type == "user"
    # A NULL user (not a user) matches no personal scope: the comparison is NULL, not true.
    owner = personal & (scope.c.external_id == bindparam(f"{prefix}user", type_=String))
    binding, binding_scope = BINDING, BINDING_SCOPE
    granted = exists(
        select(1)
        .select_from(binding.join(binding_scope, binding.c.scope_pk == binding_scope.c.pk))
        .where(
            binding.c.principal.in_(bindparam(f"{prefix}identities", expanding=True)),
            binding.c.role.in_(bindparam(f"{prefix}roles", expanding=True)),
            or_(
                binding.c.expires_at.is_(None),
                binding.c.expires_at > bindparam(f"{prefix}now", type_=UTCDateTime),
            ),
            scope.c.path.startswith(binding_scope.c.path),
            or_(binding.c.secret_id.is_(None), binding.c.secret_id == secret_id),
            or_(binding.c.name_like.is_(None), name.like(binding.c.name_like, escape=LIKE_ESCAPE)),
        )
    )
    unrestricted = bindparam(f"{prefix}unrestricted", type_=Boolean)
    return or_(owner, ~personal & or_(unrestricted, granted))


def bound_parameters(access: AccessQuery, prefix: str) -> dict[str, Any]:
    """The values of `visible_bound`'s parameters for `access`."""
    return {
        f"{prefix}user": access.user_id,
        f"{prefix}identities": list(access.identities),
        f"{prefix}roles": sorted(role.value for role in access.roles),
        f"{prefix}now": access.now,
        f"{prefix}unrestricted": access.unrestricted,
    }
