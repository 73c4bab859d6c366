"""`/api/v1/keys`: the key-encryption-key versions, and the re-wrap job (admins of global)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields

from core.keys import DEFAULT_BATCH, MAX_BATCH, KeyService
from entrypoints.http import schemas
from entrypoints.http.blueprint import Blueprint, errors, operation_id
from entrypoints.http.context import audited, current_container

blp = Blueprint(
    "keys",
    __name__,
    url_prefix="/api/v1/keys",
    description="Key-encryption keys: versions, and re-wrapping data keys after a rotation.",
)


class KeyUsageSchema(Schema):
    id = fields.String()
    provider = fields.String()
    state = fields.Function(
        lambda usage: usage.state.value if usage.state else "unrecorded",
        metadata={"description": "active, previous, retired, or unrecorded"},
    )
    blobs = fields.Integer(metadata={"description": "Stored values it wraps."})


class KeyListSchema(Schema):
    items = fields.List(fields.Nested(KeyUsageSchema))


class RewrapArgsSchema(schemas.StrictSchema):
    batch_size = schemas.Integer(maximum=MAX_BATCH, load_default=DEFAULT_BATCH)
    limit = schemas.Integer(load_default=None)


class FailedBlobSchema(Schema):
    id = fields.UUID()
    key_id = fields.String()
    problem = fields.String()


class RewrapReportSchema(Schema):
    active_key = fields.String()
    rewrapped = fields.Integer()
    batches = fields.Integer()
    failed = fields.List(fields.Nested(FailedBlobSchema))
    remaining = fields.Integer(metadata={"description": "Values still under another key."})
    retired = fields.List(fields.String())
    complete = fields.Boolean()


def key_service() -> KeyService:
    return audited(current_container().key_service)


@blp.route("")
class Keys(MethodView):
    @blp.response(200, KeyListSchema)
    @errors(403)
    @operation_id("list_keys")
    def get(self) -> Any:
        """Each key version: id, state and how many stored values it wraps."""
        return {"items": key_service().usage(g.principal)}


@blp.route("/rewrap")
class Rewrap(MethodView):
    @blp.arguments(RewrapArgsSchema(), required=False)
    @blp.response(200, RewrapReportSchema)
    @errors(403)
    @operation_id("rewrap_keys")
    def post(self, args: dict[str, Any]) -> Any:
        """Re-wrap the data keys not under the active key (values untouched), in batches;
        resumable: run it again until `complete`."""
        return key_service().rewrap(g.principal, args["batch_size"], args["limit"])
