"""The scope hierarchy: global → organization → team → project, and personal `user` scopes.

Scopes are registered with their parent, or created on first use when a secret is written to
a scope that does not exist yet and the caller names its parent: either way by an admin of the
parent. A user's personal scope is created for that user on first use, by that user alone.
Scope ids are global, but no answer tells a caller that an id is taken where it cannot see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.access import access_query, allowed, authorize, caller_bindings, confirm_caller, require
from core.audit import AuditTrail
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.domain.paging import Page, PageRequest
from core.domain.scopes import Scope
from core.domain.values import Principal, ScopeRef, ScopeType
from core.policy import check_scope
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

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
    actor: Principal  # who placed it, and when: answered if another creates the scope first
    now: datetime

    @property
    def path(self) -> str:
        """The path that bindings are matched against: a new scope inherits its parent's."""
        if self.scope is not None:
            return self.scope.path
        assert self.parent is not None
        return self.parent.path

    def create_if_missing(self, uow: UnitOfWork) -> Scope:
        """The scope, created now if it is new. Another writer may have created it since it was
        placed: below the same parent, the caller's authorization holds for it as well; below
        another, the caller is answered as for any scope it may not create there."""
        if self.scope is not None:
            return self.scope
        assert self.parent is not None
        existing = uow.scopes.get(self.ref)
        if existing is None:
            try:
                return uow.scopes.add(self.ref, self.parent)
            except Conflict:  # created by another writer this very moment
                raise cannot_create(self.actor, self.ref, self.parent.ref) from None
        if existing.parent_pk != self.parent.pk:
            seen = Target(existing.ref, existing.path)
            bindings = caller_bindings(uow, self.actor, self.now)
            if allowed(self.actor, Action.LIST, seen, bindings, self.now):
                raise Conflict(
                    f"scope {self.ref} was just created below another parent; try again",
                    details={"scope": str(self.ref)},
                )
            raise cannot_create(self.actor, self.ref, self.parent.ref)
        return existing


def check_parent(ref: ScopeRef, parent: ScopeRef) -> None:
    allowed = PARENT_TYPES.get(ref.type, frozenset())
    if parent.type not in allowed:
        names = ", ".join(sorted(t.value for t in allowed)) or "none"
        raise InvalidInput(
            f"a {ref.type.value} scope's parent must be one of: {names}",
            details={"field": "parent"},
        )


def cannot_create(actor: Principal, ref: ScopeRef, parent: ScopeRef) -> Forbidden:
    """The one answer to a caller who may not create `ref` below `parent`: whether it lacks the
    role, or the id is taken by a scope it may not see (never a 409 that says it exists)."""
    return Forbidden(f"{actor} may not create scope {ref} below {parent}")


def authorize_creation(
    uow: UnitOfWork, actor: Principal, ref: ScopeRef, parent: Scope, now: datetime
) -> None:
    """Creating a scope, whatever the path (registration, a secret's first write, an import,
    an adoption), takes an admin of its parent; a personal scope, its user alone. `NotFound`
    for a caller who may not see the parent, `cannot_create` for one who may."""
    target = ref if ref.type is ScopeType.USER else parent.ref
    try:
        authorize(uow, actor, Action.ADMIN, Target(target, parent.path), now)
    except Forbidden:
        raise cannot_create(actor, ref, parent.ref) from None


def place(
    uow: UnitOfWork,
    actor: Principal,
    ref: ScopeRef,
    parent_ref: ScopeRef | None,
    now: datetime,
    name: str | None = None,
) -> Placement:
    """Where a secret named `name` (no name: any secret) is written, once the caller is known to
    be allowed to write there, and for a scope that does not exist yet, to create it (see
    `authorize_creation`; nothing is written yet). A scope the caller may not see is answered
    as if it did not exist, and one named below another parent than its own is refused."""
    check_scope(ref)
    if ref.type is ScopeType.USER and actor.user_id == ref.id:
        parent_ref = ScopeRef.global_scope()
    if parent_ref is not None:
        check_scope(parent_ref)
        check_parent(ref, parent_ref)
    scope = uow.scopes.get(ref)
    parent = uow.scopes.get(parent_ref) if parent_ref is not None else None
    if scope is not None:
        placed_below = parent_ref is None or (parent is not None and parent.pk == scope.parent_pk)
        target = Target(ref, scope.path, name=name)
        bindings = caller_bindings(uow, actor, now)
        if placed_below and allowed(actor, Action.WRITE, target, bindings, now):
            return Placement(ref, scope, None, actor, now)
        if allowed(actor, Action.LIST, target, bindings, now):  # it sees the scope: say why
            if not placed_below:
                raise Conflict(
                    f"scope {ref} exists below another parent than {parent_ref}",
                    details={"scope": str(ref)},
                )
            require(actor, Action.WRITE, target, bindings, now)
    if parent_ref is None:
        raise NotFound(f"no scope {ref}; name its parent to create it")
    if parent is None:
        raise NotFound(f"no scope {parent_ref}")
    authorize_creation(uow, actor, ref, parent, now)
    if scope is not None:  # taken, out of the caller's sight: as if it could not create it
        raise cannot_create(actor, ref, parent_ref)
    return Placement(ref, None, parent, actor, now)


class ScopeService:
    def __init__(
        self, uow_factory: Callable[[], UnitOfWork], clock: Clock, audit: AuditTrail
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._audit = audit

    def register(self, actor: Principal, ref: ScopeRef, parent_ref: ScopeRef) -> Scope:
        """Register a scope below its parent: admins of the parent (or the user, for their own
        personal scope) may. An id taken by a scope the caller may not see is answered as a
        scope it may not create there."""
        check_scope(ref)
        check_scope(parent_ref)
        check_parent(ref, parent_ref)
        with (
            self._audit.attempt(
                actor, AuditAction.SCOPE_CREATE, f"scope:{ref}", scope=str(ref)
            ) as attempt,
            self._uow_factory() as uow,
        ):
            parent = uow.scopes.get(parent_ref)
            if parent is None:
                raise NotFound(f"no scope {parent_ref}")
            now = self._now()
            existing = uow.scopes.get(ref)
            if existing is not None:
                seen = Target(existing.ref, existing.path)
                if allowed(actor, Action.LIST, seen, caller_bindings(uow, actor, now), now):
                    raise Conflict(f"scope {ref} exists already", details={"scope": str(ref)})
            authorize_creation(uow, actor, ref, parent, now)
            if existing is not None:  # taken, out of the caller's sight
                raise cannot_create(actor, ref, parent_ref)
            scope = uow.scopes.add(ref, parent)
            attempt.succeed(uow, scope_path=scope.path, details={"parent": str(parent_ref)})
            uow.commit()
        return scope

    def get(self, actor: Principal, ref: ScopeRef) -> Scope:
        check_scope(ref)
        with (
            self._audit.attempt(
                actor, AuditAction.SCOPE_READ, f"scope:{ref}", scope=str(ref)
            ) as attempt,
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
            self._audit.attempt(actor, AuditAction.SCOPE_LIST, "scopes") as attempt,
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
            self._audit.attempt(
                actor, AuditAction.SCOPE_DELETE, f"scope:{ref}", scope=str(ref)
            ) as attempt,
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
