"""Marshmallow schemas of the REST API. They reject unknown fields and never echo values."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from core.access import Role
from core.model import CONSUMERS, Page, Secret, Stage, VersionState
from ports.values import ScopeRef, ScopeType

ENCODINGS = ("utf-8", "base64")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


class ScopeRefSchema(StrictSchema):
    type = fields.String(
        required=True,
        validate=validate.OneOf([t.value for t in ScopeType]),
        metadata={"description": "global, organization, team, project or user"},
    )
    id = fields.String(
        validate=validate.Length(1, 128),
        metadata={"description": "The scope's external id; omitted (or 'global') for global."},
    )

    @validates_schema
    def _id_unless_global(self, data: dict[str, Any], **_: Any) -> None:
        if data["type"] != ScopeType.GLOBAL.value and not data.get("id"):
            raise ValidationError("required for every scope but global", "id")
        if data["type"] == ScopeType.GLOBAL.value and data.get("id", "global") != "global":
            raise ValidationError("the global scope's id is 'global'", "id")


class ScopeSchema(ScopeRefSchema):
    parent = fields.Nested(
        ScopeRefSchema,
        metadata={"description": "Creates the scope on first use below this parent."},
    )


class ValueInputMixin(Schema):
    value = fields.String(
        required=True,
        metadata={"description": "The secret value: UTF-8 text, or base64 with `encoding`."},
    )
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(ENCODINGS))

    @validates_schema
    def _decodable(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("encoding") == "base64" and data.get("value") is not None:
            try:
                base64.b64decode(data["value"], validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError("not valid base64", "value") from None


class SecretCreateSchema(ValueInputMixin, StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 255))
    scope = fields.Nested(ScopeSchema, load_default=lambda: {"type": "global"})
    environment = fields.String(allow_none=True, load_default=None)
    type = fields.String(load_default="generic", validate=validate.Length(1, 64))
    description = fields.String(load_default="")
    tags = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    consumer = fields.String(load_default="other", validate=validate.OneOf(CONSUMERS))
    expires_at = fields.AwareDateTime(allow_none=True, load_default=None)
    not_before = fields.AwareDateTime(allow_none=True, load_default=None)
    max_versions = fields.Integer(allow_none=True, load_default=None)
    backend = fields.String(allow_none=True, load_default=None)


class VersionValidityMixin(Schema):
    expires_at = fields.AwareDateTime(
        allow_none=True, load_default=None, metadata={"description": "This version expires."}
    )
    not_before = fields.AwareDateTime(
        allow_none=True, load_default=None, metadata={"description": "Not served before."}
    )


class SecretVersionCreateSchema(ValueInputMixin, VersionValidityMixin, StrictSchema):
    pass


class SecretUpdateSchema(StrictSchema):
    """Metadata changes: an absent field stays as it is; `null` clears a clearable one."""

    description = fields.String()
    tags = fields.Dict(keys=fields.String(), values=fields.String())
    consumer = fields.String(validate=validate.OneOf(CONSUMERS))
    expires_at = fields.AwareDateTime(allow_none=True)
    not_before = fields.AwareDateTime(allow_none=True)
    max_versions = fields.Integer(allow_none=True)


class ScopeOutSchema(Schema):
    type = fields.Enum(ScopeType, by_value=True)
    id = fields.String()


class SecretSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    name = fields.String()
    scope = fields.Nested(ScopeOutSchema)
    environment = fields.String(allow_none=True)
    type = fields.String()
    description = fields.String()
    tags = fields.Dict(keys=fields.String(), values=fields.String())
    consumer = fields.String()
    backend = fields.String()
    current_version = fields.Integer()
    expires_at = fields.DateTime(allow_none=True)
    not_before = fields.DateTime(allow_none=True)
    max_versions = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String()
    updated_at = fields.DateTime(allow_none=True)
    updated_by = fields.String(allow_none=True)
    deleted_at = fields.DateTime(allow_none=True)
    purge_after = fields.DateTime(allow_none=True)
    revision = fields.Integer()
    previous_version = fields.Integer(allow_none=True)
    pending_version = fields.Integer(allow_none=True, metadata={"description": "A rotation's."})
    reference = fields.Function(
        lambda secret: f"secret://{secret.scope.type.value}/{secret.scope.id}/{secret.name}",
        metadata={"description": "What consumers store instead of the value."},
    )


class PageSchema(Schema):
    """What every paginated list answers besides its items."""

    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def dump_secret(secret: Secret) -> dict[str, Any]:
    """`SecretSchema().dump(secret)`, field for field, without marshmallow's per-field machinery:
    a page of 100 secrets is the cost of a list (a test compares both on varied secrets)."""
    scope = secret.scope
    return {
        "id": str(secret.id),
        "name": secret.name,
        "scope": {"type": scope.type.value, "id": scope.id},
        "environment": secret.environment,
        "type": secret.type,
        "description": secret.description,
        "tags": dict(secret.tags),
        "consumer": secret.consumer,
        "backend": secret.backend,
        "current_version": secret.current_version,
        "expires_at": _iso(secret.expires_at),
        "not_before": _iso(secret.not_before),
        "max_versions": secret.max_versions,
        "created_at": _iso(secret.created_at),
        "created_by": secret.created_by,
        "updated_at": _iso(secret.updated_at),
        "updated_by": secret.updated_by,
        "deleted_at": _iso(secret.deleted_at),
        "purge_after": _iso(secret.purge_after),
        "revision": secret.revision,
        "previous_version": secret.previous_version,
        "pending_version": secret.pending_version,
        "reference": f"secret://{scope.type.value}/{scope.id}/{secret.name}",
    }


class SecretPageSchema(PageSchema):
    items = fields.List(fields.Nested(SecretSchema))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if many or not isinstance(obj, Page):
            return super().dump(obj, many=many)
        return {
            "page": obj.page,
            "page_size": obj.page_size,
            "total": obj.total,
            "items": [dump_secret(secret) for secret in obj.items],
        }


class SecretListArgsSchema(StrictSchema):
    scope_type = fields.String(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = fields.String()
    environment = fields.String()
    type = fields.String()
    tag = fields.List(
        fields.String(validate=validate.Regexp(r"^[^=]+=.*$", error="expected key=value")),
        metadata={"description": "key=value; repeat to require several tags"},
    )
    prefix = fields.String()
    deleted = fields.Boolean(
        load_default=False, metadata={"description": "list soft-deleted secrets instead"}
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class SecretGetArgsSchema(StrictSchema):
    include_deleted = fields.Boolean(load_default=False)


class ValueArgsSchema(StrictSchema):
    version = fields.Integer(validate=validate.Range(min=1))
    encoding = fields.String(
        validate=validate.OneOf(ENCODINGS),
        metadata={"description": "Force an encoding; by default UTF-8 text when it decodes."},
    )


class PathArgsSchema(StrictSchema):
    environment = fields.String()


class PathValueArgsSchema(ValueArgsSchema):
    environment = fields.String()


class SecretValueSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    name = fields.String()
    version = fields.Integer()
    value = fields.String()
    encoding = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """The hot path's answer, field for field as the fields above write it (a test compares
        both), without marshmallow's per-field machinery."""
        if many or not isinstance(obj, dict):
            return super().dump(obj, many=many)
        return {
            "id": str(obj["id"]),
            "name": obj["name"],
            "version": obj["version"],
            "value": obj["value"],
            "encoding": obj["encoding"],
            "created_at": _iso(obj["created_at"]),
            "expires_at": _iso(obj["expires_at"]),
        }


class VersionSchema(Schema):
    class Meta:
        ordered = True

    version = fields.Integer()
    state = fields.Enum(VersionState, by_value=True)
    stage = fields.Enum(
        Stage,
        by_value=True,
        allow_none=True,
        metadata={"description": "current, previous, pending"},
    )
    backend = fields.String()
    created_at = fields.DateTime()
    created_by = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    not_before = fields.DateTime(allow_none=True)
    disable_at = fields.DateTime(
        allow_none=True, metadata={"description": "Where a rotation replaced it: the grace ends."}
    )


class VersionListSchema(Schema):
    items = fields.List(fields.Nested(VersionSchema))


class HealthSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.Dict())


class ErrorBodySchema(Schema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()
    request_id = fields.String(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)


class PageArgsSchema(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class ScopeCreateSchema(ScopeRefSchema):
    parent = fields.Nested(ScopeRefSchema, required=True)


class ScopeItemSchema(Schema):
    type = fields.Function(lambda scope: scope.ref.type.value)
    id = fields.Function(lambda scope: scope.ref.id)
    created_at = fields.DateTime(allow_none=True)


class ScopePageSchema(PageSchema):
    items = fields.List(fields.Nested(ScopeItemSchema))


class ScopeListArgsSchema(PageArgsSchema):
    type = fields.String(validate=validate.OneOf([t.value for t in ScopeType]))


class RoleBindingCreateSchema(StrictSchema):
    principal = fields.String(
        required=True, metadata={"description": "user:<id>, group:<id> or service:<name>"}
    )
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    scope = fields.Nested(ScopeRefSchema, required=True)
    secret_id = fields.UUID(allow_none=True, load_default=None)
    name_pattern = fields.String(
        allow_none=True, load_default=None, metadata={"description": "a glob with * and ?"}
    )
    expires_at = fields.AwareDateTime(allow_none=True, load_default=None)


class RoleBindingSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    principal = fields.String()
    role = fields.Enum(Role, by_value=True)
    scope = fields.Nested(ScopeOutSchema)
    secret_id = fields.UUID(allow_none=True)
    name_pattern = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String()
    expires_at = fields.DateTime(allow_none=True)


class RoleBindingPageSchema(PageSchema):
    items = fields.List(fields.Nested(RoleBindingSchema))


class RoleBindingListArgsSchema(PageArgsSchema):
    scope_type = fields.String(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = fields.String()
    principal = fields.String()


class ServiceAccountCreateSchema(StrictSchema):
    name = fields.String(required=True)
    scope = fields.Nested(ScopeRefSchema, required=True)
    description = fields.String(load_default="")


class ServiceAccountSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    name = fields.String()
    principal = fields.String()
    scope = fields.Nested(ScopeOutSchema)
    description = fields.String()
    created_at = fields.DateTime()
    created_by = fields.String()


class ServiceAccountPageSchema(PageSchema):
    items = fields.List(fields.Nested(ServiceAccountSchema))


class ServiceAccountListArgsSchema(PageArgsSchema):
    scope_type = fields.String(required=True, validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = fields.String()


class TokenCreateSchema(StrictSchema):
    description = fields.String(load_default="")
    expires_at = fields.AwareDateTime(allow_none=True, load_default=None)


class TokenSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    prefix = fields.String()
    description = fields.String()
    created_at = fields.DateTime()
    created_by = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema))


class IssuedTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "The token itself: shown this once only."})


class ReaderSchema(Schema):
    principal = fields.String()
    role = fields.Enum(Role, by_value=True, allow_none=True)
    via = fields.String()
    binding_id = fields.Function(lambda reader: str(reader.binding.id) if reader.binding else None)


class ReaderListSchema(Schema):
    items = fields.List(fields.Nested(ReaderSchema))


class ResolveArgsSchema(StrictSchema):
    project = fields.String()
    team = fields.String()
    organization = fields.String()
    user = fields.String(metadata={"description": "Whose personal scope; the caller's by default."})
    environment = fields.String()
    include_values = fields.Boolean(load_default=False)

    @validates_schema
    def _one_shared_scope(self, data: dict[str, Any], **_: Any) -> None:
        given = [key for key in ("project", "team", "organization") if key in data]
        if len(given) > 1:
            raise ValidationError("give one of project, team or organization", given[-1])


class ShadowedSchema(Schema):
    id = fields.UUID()
    scope = fields.Nested(ScopeOutSchema)
    environment = fields.String(allow_none=True)


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


class ResolutionSchema(Schema):
    items = fields.List(fields.Nested(ResolvedSecretSchema))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """Field for field what the schemas above write (a test compares both), without
        marshmallow's per-field machinery: a resolution is 40 entries and their shadows."""
        if many or not isinstance(obj, dict):
            return super().dump(obj, many=many)
        return {"items": [_dump_resolved(item) for item in obj["items"]]}


def _dump_scope(ref: ScopeRef) -> dict[str, Any]:
    return {"type": ref.type.value, "id": ref.id}


def _dump_resolved(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": item["name"],
        "id": str(item["id"]),
        "scope": _dump_scope(item["scope"]),
        "environment": item["environment"],
        "version": item["version"],
        "reference": item["reference"],
        "shadows": [
            {
                "id": str(shadow.id),
                "scope": _dump_scope(shadow.scope),
                "environment": shadow.environment,
            }
            for shadow in item["shadows"]
        ],
        "value": item["value"],
        "encoding": item["encoding"],
        "value_error": item["value_error"],
    }


class WhoAmISchema(Schema):
    principal = fields.String()
    kind = fields.String()
    groups = fields.List(fields.String())


class AuditQueryArgsSchema(StrictSchema):
    actor = fields.String()
    secret = fields.UUID(metadata={"description": "events about this secret"})
    resource = fields.String()
    scope_type = fields.String(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = fields.String()
    action = fields.String()
    outcome = fields.String(validate=validate.OneOf(["success", "denied", "not_found", "error"]))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


class AuditEventsArgsSchema(AuditQueryArgsSchema):
    before_seq = fields.Integer(
        validate=validate.Range(min=1), metadata={"description": "the cursor: next_cursor"}
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class AuditExportArgsSchema(AuditQueryArgsSchema):
    format = fields.String(load_default="jsonl", validate=validate.OneOf(["jsonl", "csv"]))


class AuditEventSchema(Schema):
    class Meta:
        ordered = True

    seq = fields.Integer()
    time = fields.DateTime()
    request_id = fields.String(allow_none=True)
    actor = fields.String()
    actor_type = fields.String()
    source_ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    action = fields.String()
    resource = fields.String()
    scope = fields.String(allow_none=True)
    version = fields.Integer(allow_none=True)
    outcome = fields.String()
    reason = fields.String(allow_none=True)
    details = fields.Dict()
    prev_hash = fields.String()
    hash = fields.String()


class AuditEventPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema))
    next_cursor = fields.Integer(allow_none=True)


class AuditVerifyArgsSchema(StrictSchema):
    from_seq = fields.Integer(validate=validate.Range(min=1), load_default=None)
    to_seq = fields.Integer(validate=validate.Range(min=1), load_default=None)


class BrokenLinkSchema(Schema):
    seq = fields.Integer()
    problem = fields.String()


class AuditVerificationSchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer()
    first_seq = fields.Integer(allow_none=True)
    last_seq = fields.Integer(allow_none=True)
    broken = fields.Nested(BrokenLinkSchema, allow_none=True)


class ReportArgsSchema(StrictSchema):
    days = fields.Integer(load_default=30, validate=validate.Range(0, 3650))
    scope_type = fields.String(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = fields.String()


class SecretListSchema(Schema):
    items = fields.List(fields.Nested(SecretSchema))


class OverdueArgsSchema(StrictSchema):
    hours = fields.Integer(load_default=1, validate=validate.Range(0, 87600))
    scope_type = fields.String(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = fields.String()


class StaleTokenArgsSchema(StrictSchema):
    days = fields.Integer(load_default=90, validate=validate.Range(0, 3650))


class StaleTokenSchema(Schema):
    token = fields.Nested(TokenSchema)
    account = fields.Nested(ServiceAccountSchema)


class StaleTokenListSchema(Schema):
    items = fields.List(fields.Nested(StaleTokenSchema))


# -- lifecycle: rollback, rotation, rotation policies ------------------------------------------


class RollbackSchema(StrictSchema):
    version = fields.Integer(
        required=True,
        validate=validate.Range(min=1),
        metadata={"description": "The version whose value becomes current again."},
    )


class RotateSchema(ValueInputMixin, VersionValidityMixin, StrictSchema):
    value = fields.String(
        load_default=None,
        metadata={"description": "The new value; without it the policy's rotator makes one."},
    )


class RotationPolicyInputSchema(StrictSchema):
    rotator = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "random, webhook"}
    )
    settings = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "The rotator's; keys by reference (secret_env, secret_file)."},
    )
    interval_seconds = fields.Integer(allow_none=True, load_default=None)
    cron = fields.String(
        allow_none=True, load_default=None, metadata={"description": "Five fields, in UTC."}
    )
    grace_seconds = fields.Integer(
        allow_none=True,
        load_default=None,
        metadata={"description": "How long the replaced version stays readable."},
    )


class RotationPolicySchema(Schema):
    class Meta:
        ordered = True

    secret_id = fields.UUID()
    rotator = fields.String()
    settings = fields.Dict(keys=fields.String())
    interval_seconds = fields.Integer(allow_none=True)
    cron = fields.String(allow_none=True)
    grace_seconds = fields.Integer()
    next_run_at = fields.DateTime()
    last_run_at = fields.DateTime(allow_none=True)
    last_status = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String()
    updated_at = fields.DateTime(allow_none=True)
    updated_by = fields.String(allow_none=True)
