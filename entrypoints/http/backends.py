"""`/api/v1/backends`: the configured storage backend instances, and adopting what one holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from core.adoption import AdoptionRequest, AdoptionStatus
from entrypoints.http import schemas
from entrypoints.http.blueprint import Blueprint, errors, operation_id
from entrypoints.http.context import audited, current_container
from entrypoints.http.health import backend_check
from entrypoints.http.secrets import path_text, scope_ref

blp = Blueprint(
    "backends",
    __name__,
    url_prefix="/api/v1",
    description="Storage backend instances: capabilities, health, adoption of existing values.",
)


class CapabilitiesSchema(Schema):
    max_value_bytes = fields.Integer()
    native_versioning = fields.Boolean(
        metadata={"description": "Versions are versions of one object in the store."}
    )
    native_soft_delete = fields.Boolean(
        metadata={"description": "What destroy or purge removed stays recoverable in the store."}
    )


class BackendHealthSchema(Schema):
    ok = fields.Boolean()
    latency_ms = fields.Float()
    detail = fields.String()


class BackendSchema(Schema):
    class Meta:
        ordered = True

    name = fields.String()
    plugin = fields.String()
    default = fields.Boolean()
    capabilities = fields.Nested(CapabilitiesSchema)
    health = fields.Nested(BackendHealthSchema)


class BackendListSchema(Schema):
    items = fields.List(fields.Nested(BackendSchema))


class AdoptionArgsSchema(schemas.StrictSchema):
    prefix = schemas.Text(
        required=True,
        validate=validate.Length(max=512),
        metadata={"description": "Adopt the values whose external names start with this."},
    )
    scope = fields.Nested(schemas.ScopeSchema, required=True)
    environment = schemas.Text(allow_none=True, load_default=None)


class AdoptionResultSchema(Schema):
    class Meta:
        ordered = True

    external_name = fields.String()
    name = fields.String()
    status = fields.Enum(AdoptionStatus, by_value=True)
    secret_id = fields.UUID()
    reason = fields.String()


class AdoptionReportSchema(Schema):
    items = fields.List(fields.Nested(AdoptionResultSchema))
    adopted = fields.Integer()
    skipped = fields.Integer()
    failed = fields.Integer()


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
    @errors(403, 502)
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
        results = audited(current_container().adoption_service).adopt(g.principal, request)
        counts = Counter(result.status for result in results)
        return {"items": results, **{status.value: counts[status] for status in AdoptionStatus}}
