"""Access control: roles, what they allow, role bindings, and the decision for one target.

Deny by default. A binding at a scope applies to that scope and everything below it (scopes
carry a materialized `path` of their ancestors' keys, so "below" is a prefix test), optionally
narrowed to one secret or a name glob. A user's personal scope belongs to that user alone.
A caller who may not even see a secret is told it does not exist (`NotFound`), never that it
is forbidden.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from core.domain.values import Principal, ScopeRef, ScopeType
from ports.persistence import UnitOfWork

INVALID_CREDENTIALS = "invalid or expired credentials"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    READER = "reader"
    EDITOR = "editor"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Action(enum.StrEnum):
    LIST = "list"  # see that a secret exists, and its metadata
    READ_VALUE = "read_value"
    WRITE = "write"  # create, update, rotate, delete, restore, import
    ADMIN = "admin"  # purge, manage bindings and scopes, export values, configure backends
    AUDIT = "audit"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.LIST}),
    Role.READER: frozenset({Action.LIST, Action.READ_VALUE}),
    Role.EDITOR: frozenset({Action.LIST, Action.READ_VALUE, Action.WRITE}),
    Role.ADMIN: frozenset(Action),
    Role.AUDITOR: frozenset({Action.LIST, Action.AUDIT}),
}

PRINCIPAL_PATTERN = re.compile(r"^(user|group|service):[A-Za-z0-9][A-Za-z0-9_.@:-]{0,254}$")
# Only `*` and `?`: the same glob is evaluated here and, as SQL LIKE, by the repositories.
NAME_GLOB_PATTERN = re.compile(r"^[A-Za-z0-9_.*?-]{1,255}$")


def roles_granting(action: Action) -> frozenset[Role]:
    return frozenset(role for role, actions in ROLE_ACTIONS.items() if action in actions)


@dataclass(frozen=True)
class RoleBinding:
    """`principal` holds `role` at `scope` (and below), maybe narrowed to a secret or a glob."""

    id: UUID
    principal: str
    role: Role
    scope: ScopeRef
    scope_path: str
    created_at: datetime
    created_by: str
    secret_id: UUID | None = None
    name_pattern: str | None = None
    expires_at: datetime | None = None

    @property
    def narrowed(self) -> bool:
        return self.secret_id is not None or self.name_pattern is not None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def covers(self, target: Target) -> bool:
        if not target.scope_path.startswith(self.scope_path):
            return False
        if self.secret_id is not None and self.secret_id != target.secret_id:
            return False
        if self.name_pattern is not None:
            return target.name is not None and fnmatch.fnmatchcase(target.name, self.name_pattern)
        return True


@dataclass(frozen=True)
class Target:
    """What an action is about: a scope, or a (possibly not yet existing) secret in it."""

    scope: ScopeRef
    scope_path: str
    secret_id: UUID | None = None
    name: str | None = None

    def __str__(self) -> str:
        if self.secret_id is not None:
            return f"secret {self.secret_id}"
        if self.name is not None:
            return f"secret '{self.name}' in scope {self.scope}"
        return f"scope {self.scope}"


@dataclass(frozen=True)
class AccessQuery:
    """What a repository needs to filter rows by what a caller may do, in the query itself.

    `unrestricted` callers (the development root) pass every non-personal scope; personal
    scopes pass only for their owner, `user_id`.
    """

    identities: tuple[str, ...]
    roles: frozenset[Role]
    now: datetime
    unrestricted: bool
    user_id: str | None


def access_query(actor: Principal, action: Action, now: datetime) -> AccessQuery:
    return AccessQuery(
        identities=actor.identities,
        roles=roles_granting(action),
        now=now,
        unrestricted=actor.is_root,
        user_id=actor.user_id,
    )


def allowed(
    actor: Principal, action: Action, target: Target, bindings: Iterable[RoleBinding], now: datetime
) -> bool:
    if actor.is_system:  # the worker acts on what users configured, and never reads a value
        return action is not Action.READ_VALUE
    if target.scope.type is ScopeType.USER:
        return actor.user_id == target.scope.id
    if actor.is_root:
        return True
    identities = set(actor.identities)
    return any(
        binding.principal in identities
        and binding.active(now)
        and action in ROLE_ACTIONS[binding.role]
        and binding.covers(target)
        for binding in bindings
    )


def require(
    actor: Principal, action: Action, target: Target, bindings: Iterable[RoleBinding], now: datetime
) -> None:
    """Raise `NotFound` if the caller may not even see the target, `Forbidden` if it may see it
    but not do `action` to it."""
    bindings = tuple(bindings)
    if allowed(actor, action, target, bindings, now):
        return
    if action is Action.LIST or not allowed(actor, Action.LIST, target, bindings, now):
        raise NotFound(f"no {target}")
    raise Forbidden(f"{actor} may not {action.value.replace('_', ' ')} {target}")


def confirm_caller(uow: UnitOfWork, actor: Principal, now: datetime) -> None:
    """A caller whose API token a worker found in its token cache: is the token still good?

    Asked in the unit of work that does the work, of whichever worker or process: if the change
    generation is still the one of the cached lookup, nothing changed since (a revoked token, a
    deleted account, a removed binding each move it on); otherwise the token is read again.
    `Unauthenticated` if it was revoked, expired or went with its account."""
    if actor.token_id is None or actor.generation is None:
        return  # not an API token, or one looked up in the database for this request
    if uow.audit.generation() == actor.generation:
        return
    token = uow.service_accounts.token(actor.token_id)
    if token is None or not token.usable(now):
        raise Unauthenticated(INVALID_CREDENTIALS)


def caller_bindings(uow: UnitOfWork, actor: Principal, now: datetime) -> Sequence[RoleBinding]:
    """The caller's active role bindings, read through the unit of work (its token confirmed
    first: see `confirm_caller`)."""
    confirm_caller(uow, actor, now)
    return () if actor.is_root else uow.bindings.for_identities(actor.identities, now)


def authorize(
    uow: UnitOfWork, actor: Principal, action: Action, target: Target, now: datetime
) -> None:
    """`require`, with the caller's bindings loaded through the unit of work."""
    require(actor, action, target, caller_bindings(uow, actor, now), now)


def check_principal(principal: str) -> None:
    if not PRINCIPAL_PATTERN.fullmatch(principal):
        raise InvalidInput(
            "principal must be user:<id>, group:<id> or service:<name>",
            details={"field": "principal"},
        )


def check_name_pattern(pattern: str) -> None:
    if not NAME_GLOB_PATTERN.fullmatch(pattern):
        raise InvalidInput(
            "name_pattern is a glob of name characters with * and ? only",
            details={"field": "name_pattern"},
        )
