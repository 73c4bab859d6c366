"""`/api/v1/keys`: the key-encryption-key versions, and the re-wrap job (admins of global)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from core.domain.errors import Forbidden
from core.keys import KeyService
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.operations import KeyListSchema, RewrapArgsSchema, RewrapReportSchema

blp = Blueprint(
    "keys",
    __name__,
    url_prefix="/api/v1/keys",
    description="Key-encryption keys: versions, and re-wrapping data keys after a rotation.",
)


def key_service() -> KeyService:
    return current_container().key_service()


@blp.route("")
class Keys(MethodView):
    @blp.response(200, KeyListSchema)
    @raises(Forbidden)
    @operation_id("list_keys")
    def get(self) -> Any:
        """Each key version: id, state and how many stored values it wraps."""
        return {"items": key_service().usage(g.principal)}


@blp.route("/rewrap")
class Rewrap(MethodView):
    @blp.arguments(RewrapArgsSchema(), required=False)
    @blp.response(200, RewrapReportSchema)
    @raises(Forbidden)
    @operation_id("rewrap_keys")
    def post(self, args: dict[str, Any]) -> Any:
        """Re-wrap the data keys not under the active key (values untouched), in batches;
        resumable: run it again until `complete`."""
        return key_service().rewrap(g.principal, args["batch_size"], args["limit"])
