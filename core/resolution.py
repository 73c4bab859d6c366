"""Resolution: the effective secrets of a context, the most specific one winning each name.

user > project > team > organization > global, and within a scope an environment-specific
secret beats an environment-agnostic one. The candidates come from one query, filtered by what
the caller may see; each answer says where it came from and which entries it shadows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.access import Action, access_query
from core.audit import AuditTrail
from core.errors import Expired, NotYetValid, VersionUnavailable
from core.model import Secret, SecretVersion
from core.policy import check_scope
from core.scopes import SPECIFICITY
from core.services import ValueReader, audit_place
from ports.persistence import ResolveCandidate, UnitOfWorkFactory
from ports.security import Clock
from ports.values import Principal, ScopeRef, ScopeType, SecretValue


@dataclass(frozen=True)
class ResolveContext:
    """Whose secrets: a user's personal scope, a shared scope (with its ancestors), and an
    environment. The global scope is always part of it."""

    scope: ScopeRef | None = None
    user_id: str | None = None
    environment: str | None = None

    def scopes(self) -> list[ScopeRef]:
        refs = [ScopeRef.global_scope()]
        if self.scope is not None:
            refs.append(self.scope)
        if self.user_id is not None:
            refs.append(ScopeRef(ScopeType.USER, self.user_id))
        return refs


@dataclass(frozen=True)
class ResolvedSecret:
    """The winner for one name; `value` only when asked for and allowed, else `value_error`."""

    secret: Secret
    version: SecretVersion
    shadows: list[Secret] = field(default_factory=list)
    value: SecretValue | None = None
    value_error: str | None = None


def precedence(secret: Secret) -> tuple[int, int]:
    return SPECIFICITY[secret.scope.type], 1 if secret.environment else 0


class ResolveService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        reader: ValueReader,
        clock: Clock,
        audit: AuditTrail,
    ) -> None:
        self._uow_factory = uow_factory
        self._reader = reader
        self._clock = clock
        self._audit = audit

    def resolve(
        self, actor: Principal, context: ResolveContext, *, include_values: bool = False
    ) -> list[ResolvedSecret]:
        """Value reads are each recorded in the audit trail before any value is returned."""
        scope = str(context.scope) if context.scope else None
        with self._audit.attempt(actor, "secret.resolve", f"scope:{scope}", scope=scope) as attempt:
            resolved = self._resolve(actor, context, include_values)
            reads = [
                attempt.related(
                    "secret.read_value",
                    f"secret:{entry.secret.id}",
                    version=entry.version.version,
                    **audit_place(entry.secret),
                )
                for entry in resolved
                if entry.value is not None
            ]
            details = {"environment": context.environment, "count": len(resolved)}
            attempt.succeed_durably(also=reads, details=details | {"values": len(reads)})
            return resolved

    def _resolve(
        self, actor: Principal, context: ResolveContext, include_values: bool
    ) -> list[ResolvedSecret]:
        for ref in context.scopes():
            check_scope(ref)
        now = self._clock.now()
        with self._uow_factory(read_only=True) as uow:
            candidates = uow.secrets.resolve(
                context.scopes(),
                context.environment,
                access_query(actor, Action.LIST, now),
                access_query(actor, Action.READ_VALUE, now),
            )
        by_name: dict[str, list[ResolveCandidate]] = {}
        for candidate in candidates:
            by_name.setdefault(candidate.secret.name, []).append(candidate)
        resolved = []
        for name in sorted(by_name):
            ranked = sorted(by_name[name], key=lambda c: precedence(c.secret), reverse=True)
            winner = ranked[0]
            entry = ResolvedSecret(
                secret=winner.secret,
                version=winner.current,
                shadows=[candidate.secret for candidate in ranked[1:]],
            )
            resolved.append(self._with_value(entry, winner) if include_values else entry)
        return resolved

    def _with_value(self, entry: ResolvedSecret, winner: ResolveCandidate) -> ResolvedSecret:
        if not winner.value_readable:
            return replace(entry, value_error="forbidden")
        try:
            value = self._reader.read(winner.secret, winner.current)
        except (Expired, NotYetValid, VersionUnavailable) as error:
            return replace(entry, value_error=error.code)
        return replace(entry, value=value)
