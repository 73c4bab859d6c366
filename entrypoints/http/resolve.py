"""`/api/v1/resolve`: the effective secrets of a context, with where each one came from."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from core.resolution import ResolveContext, ResolvedSecret
from entrypoints.http import schemas
from entrypoints.http.blueprint import Blueprint
from entrypoints.http.context import audited, current_container
from entrypoints.http.secrets import document_errors, value_text
from ports.values import ScopeRef, ScopeType

blp = Blueprint(
    "resolve",
    __name__,
    url_prefix="/api/v1",
    description="Resolution: the most specific secret of each name for a context.",
)


def render(entry: ResolvedSecret) -> dict[str, Any]:
    secret = entry.secret
    text, encoding = value_text(entry.value, None) if entry.value is not None else (None, None)
    return {
        "name": secret.name,
        "id": secret.id,
        "scope": secret.scope,
        "environment": secret.environment,
        "version": entry.version.version,
        "reference": f"secret://{secret.scope.type.value}/{secret.scope.id}/{secret.name}",
        "shadows": entry.shadows,
        "value": text,
        "encoding": encoding,
        "value_error": entry.value_error,
    }


@blp.route("/resolve")
class Resolve(MethodView):
    @blp.arguments(schemas.ResolveArgsSchema(), location="query")
    @blp.response(200, schemas.ResolutionSchema)
    @document_errors(400, 401, 503)
    def get(self, args: dict[str, Any]) -> Any:
        """Effective secrets for a user, a project (team, organization) and an environment:
        user > project > team > organization > global; environment-specific beats agnostic.
        Metadata only, unless `include_values=true` (values only where the caller may read)."""
        shared = next(
            (
                ScopeRef(ScopeType(kind), args[kind])
                for kind in ("project", "team", "organization")
                if kind in args
            ),
            None,
        )
        context = ResolveContext(
            scope=shared,
            user_id=args.get("user", g.principal.user_id),
            environment=args.get("environment"),
        )
        resolved = audited(current_container().resolve_service).resolve(
            g.principal, context, include_values=args["include_values"]
        )
        return {"items": [render(entry) for entry in resolved]}
