"""Resolve / explain: the effective secrets of a context (a project, team or organization, an
environment, a user's personal scope), as `GET /api/v1/resolve` answers without values: for
every name the secret that wins, the scope (and environment) it comes from, and the secrets of
the same name it shadows. What the caller may not see is left out by core, as in the API."""

from __future__ import annotations

from typing import Any

from flask import g, request

from core.domain.values import ScopeType
from core.resolution import ResolveContext
from entrypoints.ui.scopes import parse_ref, visible_scopes
from entrypoints.ui.web import bp, container, nav_item, page, signed_in

SHARED_TYPES = (ScopeType.PROJECT, ScopeType.TEAM, ScopeType.ORGANIZATION)

nav_item("ui.resolve", "Resolve", order=20)


@bp.get("/resolve")
@signed_in
def resolve() -> Any:
    found, _ = visible_scopes()
    choices = sorted(
        (scope.ref for scope in found if scope.ref.type in SHARED_TYPES),
        key=lambda ref: (SHARED_TYPES.index(ref.type), ref.id),
    )
    asked = "scope" in request.args
    scope_text = request.args.get("scope", "").strip()
    environment = request.args.get("environment", "").strip()
    user = request.args.get("user", g.principal.user_id or "").strip() if asked else None
    resolved = None
    if asked:
        context = ResolveContext(
            scope=parse_ref(scope_text) if scope_text else None,
            user_id=user or None,
            environment=environment or None,
        )
        resolved = container().resolve_service().resolve(g.principal, context)
    return page(
        "resolve.html",
        choices=choices,
        scope=scope_text,
        environment=environment,
        user=g.principal.user_id or "" if user is None else user,
        resolved=resolved,
    )
