"""Access control: roles, what they allow, role bindings, and the decision for one target.

Deny by default. A binding at a scope applies to that scope and everything below it (scopes
carry a materialized `path` of their ancestors' keys, so "below" is a prefix test), optionally
narrowed to one secret or a name glob. A user's personal scope belongs to that user alone.
A caller who may not even see a secret is told it does not exist (`NotFound`), never that it
is forbidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from core.domain.access import (
    ROLE_ACTIONS,
    AccessQuery,
    Action,
    RoleBinding,
    Target,
    roles_granting,
)
from core.domain.callers import cached_token
from core.domain.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from core.domain.values import Principal, ScopeType
from ports.unit_of_work import UnitOfWork

INVALID_CREDENTIALS = "invalid or expired credentials"


PRINCIPAL_PATTERN = re.compile(r"^(user|group|service):[A-Za-z0-9][A-Za-z0-9_.@:-]{0,254}$")
# Only `*` and `?`: the same glob is evaluated here and, as SQL LIKE, by the repositories.
NAME_GLOB_PATTERN = re.compile(r"^[A-Za-z0-9_.*?-]{1,255}$")


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
    cached = cached_token(actor)
    if cached is None:
        return  # not an API token, or one looked up in the database for this request
    token_id, generation = cached
    if uow.audit.generation() == generation:
        return
    token = uow.service_accounts.token(token_id)
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
