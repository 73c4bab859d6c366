"""Resolution: the effective secrets of a context, the most specific one winning each name.

user > project > team > organization > global, and within a scope an environment-specific
secret beats an environment-agnostic one. The candidates come from one query, filtered by what
the caller may see; each answer says where it came from and which entries it shadows.

`environment_of` turns a resolution into a process's environment variables, each typed secret
as the variables its type documents (`aws_credentials` as `AWS_ACCESS_KEY_ID`…): the one
mapping every client (`secretctl run`, the API's `variables=true`) shares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.access import access_query, confirm_caller
from core.audit import AuditTrail
from core.domain.access import Action, RoleBinding
from core.domain.audit import AuditAction
from core.domain.callers import cached_token
from core.domain.secrets import ResolveCandidate, Secret, SecretVersion
from core.domain.values import Principal, ScopeRef, ScopeType, SecretValue
from core.policy import check_scope
from core.read_cache import ReadCache
from core.reads import ValueReader, required_generation
from core.scopes import SPECIFICITY
from core.secret_access import audit_place
from core.types import VARIABLE_NAME, TypeRegistry
from ports.audit_log import StaleRead
from ports.security import Clock
from ports.unit_of_work import UnitOfWorkFactory


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
class Selection:
    """Which names of a resolution are wanted: those listed (all when none is), starting with
    `prefix`. Only the selected values are read."""

    names: frozenset[str] = frozenset()
    prefix: str = ""

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str)
            and (not self.names or name in self.names)
            and name.startswith(self.prefix)
        )


EVERY_NAME = Selection()


@dataclass(frozen=True)
class ResolvedSecret:
    """The winner for one name; `value` only when asked for and allowed, else `value_error`."""

    secret: Secret
    version: SecretVersion
    shadows: list[Secret] = field(default_factory=list)
    value: SecretValue | None = None
    value_error: str | None = None


def _unchanged_for(bindings: Iterable[RoleBinding], now: datetime) -> float:
    """How long what the bindings grant stays as it is now: until the first one expires."""
    expiries = [binding.expires_at for binding in bindings if binding.expires_at is not None]
    return min((moment - now).total_seconds() for moment in expiries) if expiries else math.inf


def precedence(secret: Secret) -> tuple[int, int]:
    return SPECIFICITY[secret.scope.type], 1 if secret.environment else 0


class ResolveService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        reader: ValueReader,
        clock: Clock,
        audit: AuditTrail,
        cache: ReadCache | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._reader = reader
        self._clock = clock
        self._audit = audit
        self._cache = cache

    def resolve(
        self,
        actor: Principal,
        context: ResolveContext,
        *,
        include_values: bool = False,
        selection: Selection = EVERY_NAME,
    ) -> list[ResolvedSecret]:
        """The winner of each selected name. Value reads are each recorded in the audit trail
        before any value is returned."""
        scope = str(context.scope) if context.scope else None
        for ref in context.scopes():
            check_scope(ref)
        with self._audit.attempt(
            actor, AuditAction.SECRET_RESOLVE, f"scope:{scope}", scope=scope
        ) as attempt:
            for use_cache in (True, False) if self._cache is not None else (False,):
                candidates, required = self._candidates(actor, context, use_cache)
                selected = [c for c in candidates if c.secret.name in selection]
                resolved = self._resolve(selected, include_values)
                reads = [
                    attempt.related(
                        AuditAction.SECRET_READ_VALUE,
                        f"secret:{entry.secret.id}",
                        version=entry.version.version,
                        **audit_place(entry.secret),
                    )
                    for entry in resolved
                    if entry.value is not None
                ]
                details = {"environment": context.environment, "count": len(resolved)}
                try:
                    attempt.succeed_durably(
                        also=reads,
                        details=details | {"values": len(reads)},
                        requires_generation=required,
                    )
                except StaleRead:  # something changed since the cached candidates: once more
                    continue
                return resolved
        raise AssertionError("a resolution from the database is never stale")  # pragma: no cover

    def _candidates(
        self, actor: Principal, context: ResolveContext, use_cache: bool
    ) -> tuple[list[ResolveCandidate], int | None]:
        """The candidates of the context as the caller may see them: from the read cache (the
        generation they require then), or from the database (cached for the generation seen
        before the query, and no longer than the caller's first binding to expire lasts)."""
        cache = self._cache
        key = (
            "resolve",
            tuple(context.scopes()),
            context.environment,
            actor.identities,
            actor.user_id,
            actor.is_root,
        )
        label = cache.generation() if cache is not None else None
        # A principal from the token cache requires the generation of that lookup too.
        token = cached_token(actor)
        seen = {token[1]} if token is not None and use_cache else set()
        if cache is not None and use_cache:
            hit = cache.get(key)
            if hit is not None:
                candidates, generation = hit
                return candidates, required_generation({generation} | seen)
        now = self._clock.now()
        with self._uow_factory(read_only=True) as uow:
            if not use_cache:
                confirm_caller(uow, actor, now)
            candidates = uow.secrets.resolve(
                context.scopes(),
                context.environment,
                access_query(actor, Action.LIST, now),
                access_query(actor, Action.READ_VALUE, now),
            )
            if cache is not None and use_cache:
                lifetime = _unchanged_for(uow.bindings.for_identities(actor.identities, now), now)
                if lifetime > 0:
                    cache.put(key, candidates, label, lifetime, size=len(candidates))
        return candidates, required_generation(seen)

    def _resolve(
        self, candidates: list[ResolveCandidate], include_values: bool
    ) -> list[ResolvedSecret]:
        by_name: dict[str, list[ResolveCandidate]] = {}
        for candidate in candidates:
            by_name.setdefault(candidate.secret.name, []).append(candidate)
        resolved = []
        for name in sorted(by_name):
            ranked = sorted(by_name[name], key=lambda c: precedence(c.secret), reverse=True)
            winner = ranked[0]
            value, value_error = self._value(winner) if include_values else (None, None)
            resolved.append(
                ResolvedSecret(
                    secret=winner.secret,
                    version=winner.current,
                    shadows=[candidate.secret for candidate in ranked[1:]],
                    value=value,
                    value_error=value_error,
                )
            )
        return resolved

    def _value(self, winner: ResolveCandidate) -> tuple[SecretValue | None, str | None]:
        """The winner's value, or why there is none."""
        if not winner.value_readable:
            return None, "forbidden"
        return self._reader.read_or_reason(winner.secret, winner.current)


class VariablesError(StrEnum):
    """Why a secret's value gives no environment variables."""

    NOT_A_VARIABLE_NAME = "not_a_variable_name"  # its name does not make one
    NOT_TEXT = "not_text"  # binary, or holds a NUL, which no variable can
    INVALID_VALUE = "invalid_value"  # it no longer renders as its type's variables


class UnsetReason(StrEnum):
    SHADOWED = "shadowed"  # a more specific secret sets the variable
    AMBIGUOUS = "ambiguous"  # a secret as specific sets it too: neither does


@dataclass(frozen=True)
class UnsetVariable:
    """A variable a secret would set and does not, and the secrets (by name) that stop it."""

    name: str
    reason: UnsetReason
    by: tuple[str, ...]


@dataclass(frozen=True)
class SecretVariables:
    """What one resolved secret puts in the environment: none without a value (`error` says
    why when it has one), and the variables it would set that another secret takes (`unset`)."""

    variables: dict[str, SecretValue] | None = None
    error: VariablesError | None = None
    unset: tuple[UnsetVariable, ...] = ()


def variable_name(secret_name: str) -> str | None:
    """The variable a secret's value is named after: its name, `-` and `.` as `_`."""
    name = secret_name.replace("-", "_").replace(".", "_")
    return name if VARIABLE_NAME.fullmatch(name) else None


def environment_of(
    resolved: Sequence[ResolvedSecret], types: TypeRegistry
) -> list[SecretVariables]:
    """The variables of each entry, in order. Two entries that give the same variable: the
    more specific one (by `precedence`) sets it; when they are as specific, neither does."""
    offered = [_offered(entry, types) for entry in resolved]
    givers: dict[str, list[int]] = {}
    for index, (variables, _) in enumerate(offered):
        for name in variables or {}:
            givers.setdefault(name, []).append(index)
    answer = []
    for index, (variables, error) in enumerate(offered):
        if variables is None:
            answer.append(SecretVariables(error=error))
            continue
        kept, unset = {}, []
        for name, value in variables.items():
            rank = {i: precedence(resolved[i].secret) for i in givers[name]}
            top = max(rank.values())
            others = tuple(resolved[i].secret.name for i in rank if i != index and rank[i] == top)
            if rank[index] < top:
                unset.append(UnsetVariable(name, UnsetReason.SHADOWED, others))
            elif others:
                unset.append(UnsetVariable(name, UnsetReason.AMBIGUOUS, others))
            else:
                kept[name] = value
        answer.append(SecretVariables(kept, None, tuple(unset)))
    return answer


def _offered(
    entry: ResolvedSecret, types: TypeRegistry
) -> tuple[dict[str, SecretValue] | None, VariablesError | None]:
    """The variables an entry's value gives, before any other entry is considered."""
    if entry.value is None:
        return None, None
    variable = variable_name(entry.secret.name)
    if variable is None:
        return None, VariablesError.NOT_A_VARIABLE_NAME
    try:
        text = entry.value.reveal().decode("utf-8")
    except UnicodeDecodeError:
        return None, VariablesError.NOT_TEXT
    if "\x00" in text:
        return None, VariablesError.NOT_TEXT
    rendered = types.environment(entry.secret.type, variable, entry.value)
    if rendered is None:
        return None, VariablesError.INVALID_VALUE
    return {name: SecretValue.from_text(text) for name, text in rendered.items()}, None
