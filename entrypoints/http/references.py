"""`/api/v1/references/…`: values read by reference (`secret://TYPE/ID/NAME?env=E`), one or a batch.

Each value is read as `GET /api/v1/secrets/{id}/value` reads it (the same use case: authorized
and audited as a value read, one audit event per value); `expand=true` replaces the value's
`${secret://…}` references (see `core.references`).
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from core.domain.errors import (
    BackendAuthFailed,
    Conflict,
    Expired,
    Forbidden,
    InvalidSecretValue,
    NotFound,
    ServiceError,
)
from core.domain.secrets import RevealedValue
from core.reads import ReadService
from core.references import parse_reference
from entrypoints.http import examples
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.errors import status_of
from entrypoints.http.schemas.references import (
    ReferenceValueArgsSchema,
    ReferenceValueSchema,
    ReferenceValuesRequestSchema,
    ReferenceValuesSchema,
)
from entrypoints.http.secrets import encode_value

blp = Blueprint(
    "references",
    __name__,
    url_prefix="/api/v1",
    description="References: values read by `secret://` reference instead of by id or path.",
)

REFERENCE_VALUE = {**examples.SECRET_VALUE, "reference": examples.REFERENCE}
REFERENCE_VALUES_REQUEST = {
    "references": [examples.REFERENCE, "secret://global/MISSING"],
    "expand": False,
}
REFERENCE_VALUES = {
    "items": [
        {
            "reference": examples.REFERENCE,
            "secret_id": examples.OPENAI_KEY_ID,
            "version": 1,
            "value": "sk-example-0001",
            "encoding": "utf-8",
            "expires_at": None,
        },
        {
            "reference": "secret://global/MISSING",
            "error": {"code": "not_found", "message": "no secret secret://global/MISSING"},
        },
    ]
}


def service() -> ReadService:
    return current_container().read_service()


def read(text: str, expand: bool) -> RevealedValue:
    """The value a reference names, expanded if asked: `InvalidInput` for a bad reference."""
    secrets = service()
    revealed = secrets.read_value_by_reference(g.principal, parse_reference(text))
    if expand:
        revealed, _ = secrets.expand_value(g.principal, revealed)
    return revealed


@blp.route("/references/value")
class ReferenceValue(MethodView):
    @blp.arguments(ReferenceValueArgsSchema(), location="query")
    @blp.response(200, ReferenceValueSchema, example=REFERENCE_VALUE)
    @raises(Forbidden, NotFound, Conflict, Expired, InvalidSecretValue, BackendAuthFailed)
    @operation_id("read_value_by_reference")
    def get(self, args: dict[str, Any]) -> Any:
        """The value a reference names: the answer of `GET /secrets/{id}/value`, and the
        reference as asked. 404 alike for a secret that does not exist and one the caller
        cannot see. `expand=true` replaces each `${secret://…}` in it (422 `reference_cycle`,
        `reference_too_deep` or `reference_unresolvable`)."""
        revealed = read(args["ref"], args["expand"])
        return encode_value(revealed, args.get("encoding")) | {"reference": args["ref"]}


@blp.route("/references/values")
class ReferenceValues(MethodView):
    @blp.arguments(ReferenceValuesRequestSchema(), example=REFERENCE_VALUES_REQUEST)
    @blp.response(200, ReferenceValuesSchema, example=REFERENCE_VALUES)
    @raises(BackendAuthFailed)
    @operation_id("read_values_by_reference")
    def post(self, data: dict[str, Any]) -> Any:
        """Up to 100 values by reference, in the order asked: each item a value, or the error
        that reference alone met (`not_found`, `validation_error`, `reference_cycle`…). One
        audit event per value read; a failure of the service itself fails the whole request."""
        items = []
        for text in data["references"]:
            try:
                revealed = read(text, data["expand"])
                answer = encode_value(revealed, None)
            except ServiceError as error:
                if status_of(error) >= 500:
                    raise
                items.append(
                    {"reference": text, "error": {"code": error.code, "message": error.message}}
                )
                continue
            items.append(
                {
                    "reference": text,
                    "secret_id": answer["id"],
                    "version": answer["version"],
                    "value": answer["value"],
                    "encoding": answer["encoding"],
                    "expires_at": answer["expires_at"],
                }
            )
        return {"items": items}
