"""What the pages may OFFER: whether the caller holds an action at a scope, by core's own rule
(`core.access.allowed`) and the caller's bindings. Only for deciding which forms and buttons a
page shows; core checks again when one is used (the UI holds no rule of its own)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import g

from core.access import allowed, caller_bindings
from core.domain.access import Action, Target
from core.domain.values import ScopeRef
from entrypoints.ui.web import container


def scopes_allowing(action: Action, refs: Iterable[ScopeRef]) -> set[ScopeRef]:
    """Those of `refs` at which the caller holds `action` (unknown scopes left out)."""
    now = container().clock().now()
    with container().unit_of_work(read_only=True) as uow:
        bindings = caller_bindings(uow, g.principal, now)
        found = [uow.scopes.get(ref) for ref in refs]
    return {
        scope.ref
        for scope in found
        if scope is not None
        and allowed(g.principal, action, Target(scope.ref, scope.path), bindings, now)
    }


def may(action: Action, ref: ScopeRef | None = None) -> bool:
    """Whether the caller holds `action` at `ref` (the global scope by default)."""
    ref = ref or ScopeRef.global_scope()
    return ref in scopes_allowing(action, [ref])
