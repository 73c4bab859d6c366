"""`/api/v1/reports`: compliance views built on the API (admins and auditors)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from core.domain.errors import Forbidden, NotFound
from core.reports import ReportService
from entrypoints.http.blueprint import Blueprint, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.audit import (
    OverdueArgsSchema,
    ReportArgsSchema,
    SecretListSchema,
    StaleTokenArgsSchema,
    StaleTokenListSchema,
)
from entrypoints.http.secrets import scope_ref

blp = Blueprint(
    "reports", __name__, url_prefix="/api/v1/reports", description="Compliance reports."
)


def reports() -> ReportService:
    return current_container().report_service()


def scope_of(args: dict[str, Any]) -> Any:
    return scope_ref(args["scope_type"], args.get("scope_id")) if "scope_type" in args else None


@blp.route("/expiring")
class Expiring(MethodView):
    @blp.arguments(ReportArgsSchema(), location="query")
    @blp.response(200, SecretListSchema)
    @raises(Forbidden, NotFound)
    def get(self, args: dict[str, Any]) -> Any:
        """Secrets expiring within `days` (or expired), soonest first."""
        return {"items": reports().expiring(g.principal, scope_of(args), args["days"])}


@blp.route("/never-read")
class NeverRead(MethodView):
    @blp.arguments(ReportArgsSchema(), location="query")
    @blp.response(200, SecretListSchema)
    @raises(Forbidden, NotFound)
    def get(self, args: dict[str, Any]) -> Any:
        """Secrets whose value nobody read in the last `days`."""
        return {"items": reports().never_read(g.principal, scope_of(args), args["days"])}


@blp.route("/rotation-overdue")
class RotationOverdue(MethodView):
    @blp.arguments(OverdueArgsSchema(), location="query")
    @blp.response(200, SecretListSchema)
    @raises(Forbidden, NotFound)
    def get(self, args: dict[str, Any]) -> Any:
        """Secrets whose scheduled rotation is more than `hours` late, or whose last failed."""
        return {"items": reports().rotation_overdue(g.principal, scope_of(args), args["hours"])}


@blp.route("/stale-tokens")
class StaleTokens(MethodView):
    @blp.arguments(StaleTokenArgsSchema(), location="query")
    @blp.response(200, StaleTokenListSchema)
    @raises(Forbidden)
    def get(self, args: dict[str, Any]) -> Any:
        """Service-account tokens unused for `days`: candidates for revocation."""
        return {"items": reports().stale_tokens(g.principal, args["days"])}
