"""Roles, what they allow, role bindings, and what an action is about.

The decision itself (`allowed`, `require`) is core's `core.access`; this is its vocabulary.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.domain.values import ScopeRef


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
