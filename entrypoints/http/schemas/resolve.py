"""Schemas of resolution: which secrets apply to a context (with its fast dump)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from core.domain.values import ScopeRef
from core.references import reference_of
from entrypoints.http.schemas.fields import StrictSchema, Text
from entrypoints.http.schemas.scopes import ScopeOutSchema


class ResolveArgsSchema(StrictSchema):
    project = Text()
    team = Text()
    organization = Text()
    user = Text(metadata={"description": "Whose personal scope; the caller's by default."})
    environment = Text()
    include_values = fields.Boolean(load_default=False)
    variables = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Each value also as the environment variables its type documents "
            "(`variables`); reads values as include_values does."
        },
    )
    name = fields.List(Text(), metadata={"description": "Only these names; repeat for several."})
    prefix = Text(metadata={"description": "Only names starting with this."})
    expand = fields.Boolean(
        load_default=False,
        metadata={
            "description": "With include_values: replace each `${secret://…}` in a value with "
            "the value it names (each read authorized and audited)."
        },
    )

    @validates_schema
    def _one_shared_scope(self, data: dict[str, Any], **_: Any) -> None:
        given = [key for key in ("project", "team", "organization") if key in data]
        if len(given) > 1:
            raise ValidationError("give one of project, team or organization", given[-1])


class ShadowedSchema(Schema):
    id = fields.UUID()
    scope = fields.Nested(ScopeOutSchema)
    environment = fields.String(allow_none=True)
    reference = fields.Function(reference_of)


class ExpansionSchema(Schema):
    class Meta:
        ordered = True

    reference = fields.String()
    secret_id = fields.UUID()
    version = fields.Integer()


class UnsetVariableSchema(Schema):
    name = fields.String()
    reason = fields.String(
        metadata={
            "description": "shadowed (a more specific secret sets it) "
            "or ambiguous (a secret as specific would set it too: neither does)"
        }
    )
    by = fields.List(fields.String(), metadata={"description": "the other secrets' names"})


class ResolvedSecretSchema(Schema):
    class Meta:
        ordered = True

    name = fields.String()
    id = fields.UUID()
    scope = fields.Nested(ScopeOutSchema)
    environment = fields.String(allow_none=True)
    version = fields.Integer()
    reference = fields.String()
    shadows = fields.List(fields.Nested(ShadowedSchema))
    value = fields.String(allow_none=True)
    encoding = fields.String(allow_none=True)
    value_error = fields.String(
        allow_none=True, metadata={"description": "why no value: forbidden, secret_expired, …"}
    )
    expansions = fields.List(
        fields.Nested(ExpansionSchema),
        metadata={"description": "With expand=true: the references its value was expanded with."},
    )
    variables = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        allow_none=True,
        metadata={"description": "With variables=true: the variables this secret sets."},
    )
    variables_error = fields.String(
        allow_none=True,
        metadata={"description": "why a value sets none: not_a_variable_name, not_text, …"},
    )
    unset_variables = fields.List(
        fields.Nested(UnsetVariableSchema),
        metadata={"description": "Variables it would set that other secrets take or contest."},
    )


class ResolutionSchema(Schema):
    items = fields.List(fields.Nested(ResolvedSecretSchema))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """Field for field what the schemas above write (a test compares both), without
        marshmallow's per-field machinery: a resolution is 40 entries and their shadows."""
        if many or not isinstance(obj, dict):
            return super().dump(obj, many=many)
        return {"items": [_dump_resolved(item) for item in obj["items"]]}


def dump_scope(ref: ScopeRef) -> dict[str, Any]:
    return {"type": ref.type.value, "id": ref.id}


def _dump_resolved(item: dict[str, Any]) -> dict[str, Any]:
    return (
        {
            "name": item["name"],
            "id": str(item["id"]),
            "scope": dump_scope(item["scope"]),
            "environment": item["environment"],
            "version": item["version"],
            "reference": item["reference"],
            "shadows": [
                {
                    "id": str(shadow.id),
                    "scope": dump_scope(shadow.scope),
                    "environment": shadow.environment,
                    "reference": reference_of(shadow),
                }
                for shadow in item["shadows"]
            ],
            "value": item["value"],
            "encoding": item["encoding"],
            "value_error": item["value_error"],
        }
        | (_dump_expansions(item["expansions"]) if "expansions" in item else {})
        | ({key: item[key] for key in VARIABLES_KEYS} if "variables" in item else {})
    )


def _dump_expansions(expansions: list[Any]) -> dict[str, Any]:
    return {
        "expansions": [
            {"reference": e.reference, "secret_id": str(e.secret_id), "version": e.version}
            for e in expansions
        ]
    }


VARIABLES_KEYS = ("variables", "variables_error", "unset_variables")  # with variables=true
