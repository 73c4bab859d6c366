"""Managing role bindings (admins of a scope), and who can read a given secret."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from core.access import authorize, check_name_pattern, check_principal
from core.audit import Attempt, AuditTrail
from core.domain.access import ROLE_ACTIONS, Action, Role, RoleBinding, Target
from core.domain.audit import AuditAction
from core.domain.errors import InvalidInput, NotFound
from core.domain.paging import Page, PageRequest
from core.domain.values import Principal, ScopeRef, ScopeType
from core.policy import check_scope
from core.secret_access import audit_place, secret_target
from ports.security import Clock
from ports.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class NewBinding:
    principal: str
    role: Role
    scope: ScopeRef
    secret_id: UUID | None = None
    name_pattern: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Reader:
    """Someone who can read a secret's value, and the binding (if any) that lets them."""

    principal: str
    role: Role | None
    binding: RoleBinding | None
    via: str


class RoleBindingService:
    def __init__(
        self, uow_factory: Callable[[], UnitOfWork], clock: Clock, audit: AuditTrail
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._audit = audit

    def create(self, actor: Principal, draft: NewBinding) -> RoleBinding:
        details = {"principal": draft.principal, "role": draft.role.value}
        with self._audit.attempt(
            actor,
            AuditAction.BINDING_CREATE,
            f"scope:{draft.scope}",
            scope=str(draft.scope),
            details=details,
        ) as attempt:
            return self._create(actor, draft, attempt)

    def _create(self, actor: Principal, draft: NewBinding, attempt: Attempt) -> RoleBinding:
        check_principal(draft.principal)
        check_scope(draft.scope)
        if draft.name_pattern is not None:
            check_name_pattern(draft.name_pattern)
        if draft.scope.type is ScopeType.USER:
            raise InvalidInput(
                "a personal scope belongs to its user alone; it takes no role bindings",
                details={"field": "scope"},
            )
        now = self._clock.now()
        if draft.expires_at is not None and draft.expires_at <= now:
            raise InvalidInput("expires_at is in the past", details={"field": "expires_at"})
        with self._uow_factory() as uow:
            scope = uow.scopes.get(draft.scope)
            if scope is None:
                raise NotFound(f"no scope {draft.scope}")
            attempt.learn(scope_path=scope.path)
            authorize(uow, actor, Action.ADMIN, Target(scope.ref, scope.path), now)
            if draft.secret_id is not None:
                secret = uow.secrets.get(draft.secret_id)
                personal = secret is not None and secret.scope.type is ScopeType.USER
                if secret is None or personal or not secret.scope_path.startswith(scope.path):
                    raise InvalidInput(
                        f"secret {draft.secret_id} is not in scope {draft.scope} or below it",
                        details={"field": "secret_id"},
                    )
            binding = RoleBinding(
                id=uuid.uuid4(),
                principal=draft.principal,
                role=draft.role,
                scope=draft.scope,
                scope_path=scope.path,
                created_at=now,
                created_by=actor.id,
                secret_id=draft.secret_id,
                name_pattern=draft.name_pattern,
                expires_at=draft.expires_at,
            )
            uow.bindings.add(binding)
            attempt.succeed(uow, resource=f"binding:{binding.id}")
            uow.commit()
        return binding

    def list_bindings(
        self,
        actor: Principal,
        scope: ScopeRef | None,
        principal: str | None,
        page: PageRequest,
    ) -> Page[RoleBinding]:
        """Bindings at a scope (for its admins), or a principal's own bindings."""
        now = self._clock.now()
        with (
            self._audit.attempt(
                actor, AuditAction.BINDING_LIST, "bindings", scope=str(scope) if scope else None
            ) as attempt,
            self._uow_factory() as uow,
        ):
            if scope is not None:
                found = uow.scopes.get(scope)
                if found is None:
                    raise NotFound(f"no scope {scope}")
                authorize(uow, actor, Action.ADMIN, Target(found.ref, found.path), now)
            elif not actor.is_root and principal not in actor.identities:
                raise InvalidInput(
                    "name a scope you administer, or list your own bindings with principal",
                    details={"field": "scope"},
                )
            bindings = uow.bindings.search(scope, principal, page)
            attempt.succeed(uow, details={"total": bindings.total})
            uow.commit()
        return bindings

    def delete(self, actor: Principal, binding_id: UUID) -> None:
        now = self._clock.now()
        with (
            self._audit.attempt(
                actor, AuditAction.BINDING_DELETE, f"binding:{binding_id}"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            binding = uow.bindings.get(binding_id)
            if binding is None:
                raise NotFound(f"no role binding {binding_id}")
            target = Target(binding.scope, binding.scope_path)
            attempt.learn(
                scope=str(binding.scope),
                scope_path=binding.scope_path,
                details={"principal": binding.principal, "role": binding.role.value},
            )
            try:
                authorize(uow, actor, Action.ADMIN, target, now)
            except NotFound:
                raise NotFound(f"no role binding {binding_id}") from None
            uow.bindings.delete(binding_id)
            attempt.succeed(uow)
            uow.commit()

    def readers(self, actor: Principal, secret_id: UUID) -> list[Reader]:
        """Who can read the secret's value, and through which binding (admins and auditors)."""
        now = self._clock.now()
        with (
            self._audit.attempt(
                actor, AuditAction.SECRET_ACCESS_REPORT, f"secret:{secret_id}"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            secret = uow.secrets.get(secret_id)
            if secret is None:
                raise NotFound(f"no secret {secret_id}")
            target = secret_target(secret)
            attempt.learn(**audit_place(secret))
            authorize(uow, actor, Action.AUDIT, target, now)
            bindings = uow.bindings.at_or_above(secret.scope_path, now)
            attempt.succeed(uow)
            uow.commit()
        if secret.scope.type is ScopeType.USER:
            return [Reader(f"user:{secret.scope.id}", None, None, "owner of the personal scope")]
        return [
            Reader(
                binding.principal, binding.role, binding, f"{binding.role.value} at {binding.scope}"
            )
            for binding in bindings
            if Action.READ_VALUE in ROLE_ACTIONS[binding.role] and binding.covers(target)
        ]
