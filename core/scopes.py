"""The scope hierarchy: global → organization → team → project, and personal `user` scopes.

Scopes are registered with their parent (by an admin of the parent), or created on first use
when a secret is written to a scope that does not exist yet and the caller names its parent.
A user's personal scope is created for that user on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.access import Action, Target, access_query, authorize, confirm_caller
from core.audit import AuditTrail
from core.errors import Conflict, InvalidInput, NotFound
from core.model import Page, PageRequest, Scope
from core.policy import check_scope
from ports.persistence import UnitOfWork
from ports.security import Clock
from ports.values import Principal, ScopeRef, ScopeType

PARENT_TYPES: dict[ScopeType, frozenset[ScopeType]] = {
    ScopeType.ORGANIZATION: frozenset({ScopeType.GLOBAL}),
    ScopeType.TEAM: frozenset({ScopeType.ORGANIZATION}),
    ScopeType.PROJECT: frozenset({ScopeType.TEAM, ScopeType.ORGANIZATION}),
    ScopeType.USER: frozenset({ScopeType.GLOBAL}),
}

# How specific a scope is: the more specific secret wins a resolution.
SPECIFICITY: dict[ScopeType, int] = {
    ScopeType.GLOBAL: 0,
    ScopeType.ORGANIZATION: 1,
    ScopeType.TEAM: 2,
    ScopeType.PROJECT: 3,
    ScopeType.USER: 4,
}


@dataclass(frozen=True)
class Placement:
    """Where a new secret goes: its scope, or (if new) the parent it will be created under."""

    ref: ScopeRef
    scope: Scope | None
    parent: Scope | None

    @property
    def path(self) -> str:
        """The path that bindings are matched against: a new scope inherits its parent's."""
        if self.scope is not None:
            return self.scope.path
        assert self.parent is not None
        return self.parent.path

    def create_if_missing(self, uow: UnitOfWork) -> Scope:
        """The scope, created now if it is new. Another writer may have created it since it was
        placed: below the same parent, the caller's authorization holds for it as well."""
        if self.scope is not None:
            return self.scope
        assert self.parent is not None
        existing = uow.scopes.get(self.ref)
        if existing is None:
            return uow.scopes.add(self.ref, self.parent)
        if existing.parent_pk != self.parent.pk:
            raise Conflict(
                f"scope {self.ref} was just created below another parent; try again",
                details={"scope": str(self.ref)},
            )
        return existing


def check_parent(ref: ScopeRef, parent: ScopeRef) -> None:
    allowed = PARENT_TYPES.get(ref.type, frozenset())
    if parent.type not in allowed:
        names = ", ".join(sorted(t.value for t in allowed)) or "none"
        raise InvalidInput(
            f"a {ref.type.value} scope's parent must be one of: {names}",
            details={"field": "parent"},
        )


def place(
    uow: UnitOfWork, actor: Principal, ref: ScopeRef, parent_ref: ScopeRef | None
) -> Placement:
    """Find the scope a secret is written to, or how it will be created (not yet written)."""
    check_scope(ref)
    scope = uow.scopes.get(ref)
    if scope is not None:
        return Placement(ref, scope, None)
    if ref.type is ScopeType.USER and actor.user_id == ref.id:
        parent_ref = ScopeRef.global_scope()
    if parent_ref is None:
        raise NotFound(f"no scope {ref}; name its parent to create it")
    check_scope(parent_ref)
    check_parent(ref, parent_ref)
    parent = uow.scopes.get(parent_ref)
    if parent is None:
        raise NotFound(f"no scope {parent_ref}")
    return Placement(ref, None, parent)


class ScopeService:
    def __init__(
        self, uow_factory: Callable[[], UnitOfWork], clock: Clock, audit: AuditTrail
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._audit = audit

    def register(self, actor: Principal, ref: ScopeRef, parent_ref: ScopeRef) -> Scope:
        """Register a scope below its parent: admins of the parent (or the user, for their own
        personal scope) may."""
        check_scope(ref)
        check_scope(parent_ref)
        check_parent(ref, parent_ref)
        with (
            self._audit.attempt(actor, "scope.create", f"scope:{ref}", scope=str(ref)) as attempt,
            self._uow_factory() as uow,
        ):
            parent = uow.scopes.get(parent_ref)
            if parent is None:
                raise NotFound(f"no scope {parent_ref}")
            # A personal scope is its owner's to register; any other, the parent's admins'.
            target = ref if ref.type is ScopeType.USER else parent.ref
            authorize(uow, actor, Action.ADMIN, Target(target, parent.path), self._now())
            if uow.scopes.get(ref) is not None:
                raise Conflict(f"scope {ref} exists already", details={"scope": str(ref)})
            scope = uow.scopes.add(ref, parent)
            attempt.succeed(uow, scope_path=scope.path, details={"parent": str(parent_ref)})
            uow.commit()
        return scope

    def get(self, actor: Principal, ref: ScopeRef) -> Scope:
        check_scope(ref)
        with (
            self._audit.attempt(actor, "scope.read", f"scope:{ref}", scope=str(ref)) as attempt,
            self._uow_factory() as uow,
        ):
            scope = uow.scopes.get(ref)
            if scope is None:
                raise NotFound(f"no scope {ref}")
            authorize(uow, actor, Action.LIST, Target(ref, scope.path), self._now())
            attempt.succeed(uow, scope_path=scope.path)
            uow.commit()
        return scope

    def list_scopes(
        self, actor: Principal, scope_type: ScopeType | None, page: PageRequest
    ) -> Page[Scope]:
        now = self._now()
        with (
            self._audit.attempt(actor, "scope.list", "scopes") as attempt,
            self._uow_factory() as uow,
        ):
            confirm_caller(uow, actor, now)
            access = access_query(actor, Action.LIST, now)
            found = uow.scopes.search(scope_type.value if scope_type else None, access, page)
            attempt.succeed(uow, details={"total": found.total})
            uow.commit()
        return found

    def delete(self, actor: Principal, ref: ScopeRef) -> None:
        """Remove a scope that holds nothing any more (no child scopes, secrets, accounts)."""
        with (
            self._audit.attempt(actor, "scope.delete", f"scope:{ref}", scope=str(ref)) as attempt,
            self._uow_factory() as uow,
        ):
            scope = uow.scopes.get(ref)
            if scope is None:
                raise NotFound(f"no scope {ref}")
            attempt.learn(scope_path=scope.path)
            authorize(uow, actor, Action.ADMIN, Target(ref, scope.path), self._now())
            if ref.type is ScopeType.GLOBAL:
                raise Conflict("the global scope cannot be deleted")
            usage = uow.scopes.usage(scope)
            if usage.children or usage.secrets or usage.service_accounts:
                raise Conflict(
                    f"scope {ref} still holds {usage.children} child scopes, "
                    f"{usage.secrets} secrets (deleted ones included) and "
                    f"{usage.service_accounts} service accounts",
                    details={
                        "children": usage.children,
                        "secrets": usage.secrets,
                        "service_accounts": usage.service_accounts,
                    },
                )
            uow.scopes.delete(scope)
            attempt.succeed(uow)
            uow.commit()

    def _now(self) -> datetime:
        return self._clock.now()
