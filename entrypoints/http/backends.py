"""`/api/v1/backends`: the configured storage backend instances, and adopting what one holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import g
from flask.views import MethodView

from core.adoption import AdoptionRequest, AdoptionStatus
from core.domain.errors import BackendAuthFailed, Forbidden
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.health import backend_check
from entrypoints.http.schemas.operations import (
    AdoptionArgsSchema,
    AdoptionReportSchema,
    BackendListSchema,
)
from entrypoints.http.secrets import path_text, scope_ref

blp = Blueprint(
    "backends",
    __name__,
    url_prefix="/api/v1",
    description="Storage backend instances: capabilities, health, adoption of existing values.",
)


@blp.route("/backends")
class Backends(MethodView):
    @blp.response(200, BackendListSchema)
    @operation_id("list_backends")
    def get(self) -> Any:
        """Every configured backend instance: its plugin, capabilities and live health."""
        container = current_container()
        configured = container.settings().backends
        registry = container.backends()
        return {
            "items": [
                {
                    "name": backend.name,
                    "plugin": configured[backend.name]["plugin"],
                    "default": backend.name == registry.default,
                    "capabilities": backend.capabilities,
                    "health": backend_check(backend),
                }
                for backend in registry
            ]
        }


@blp.route("/backends/<string(maxlength=64):backend>/adopt")
class BackendAdoption(MethodView):
    @blp.arguments(AdoptionArgsSchema())
    @blp.response(200, AdoptionReportSchema)
    @raises(Forbidden, BackendAuthFailed)
    @operation_id("adopt_values")
    def post(self, data: dict[str, Any], backend: str) -> Any:
        """Bring the values under `prefix` in this backend under management, without copying
        them: each becomes a secret whose version 1 points at it."""
        scope, parent = data["scope"], data["scope"].get("parent")
        request = AdoptionRequest(
            backend=path_text(backend, "backend"),
            prefix=data["prefix"],
            scope=scope_ref(scope["type"], scope.get("id")),
            parent=scope_ref(parent["type"], parent.get("id")) if parent else None,
            environment=data["environment"],
        )
        results = current_container().adoption_service().adopt(g.principal, request)
        counts = Counter(result.status for result in results)
        return {"items": results, **{status.value: counts[status] for status in AdoptionStatus}}
