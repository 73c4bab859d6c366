"""Marshmallow schemas of the REST API. They reject unknown fields and never echo values."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from core.access import Role
from core.domain.model import CONSUMERS, Page, Secret, Stage, VersionState
from core.domain.values import ScopeRef, ScopeType
from core.references import MAX_LENGTH as REFERENCE_MAX_LENGTH
from core.references import reference_of

ENCODINGS = ("utf-8", "base64")

# What the columns behind the numbers a caller gives hold (adapters/db/tables.py): PostgreSQL's
# `integer` (versions, counts, seconds, pages) and `bigint` (audit sequence numbers).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
QUERY_INTEGER = re.compile(r"-?[0-9]{1,20}")
MAX_JSON_DEPTH = 8


# -- the fields of what a caller sends -----------------------------------------------------------
# Every input schema builds on these, never on marshmallow's plain String, Integer or
# AwareDateTime (tests/unit/test_request_fields.py checks): what they accept can be stored,
# compared and logged everywhere downstream, and anything else is a 400 naming the field.


def writable(text: str) -> bool:
    """Whether `text` holds no NUL (PostgreSQL's text types cannot) and no unpaired surrogate
    (not UTF-8: no database, log line or JSON encoder downstream can write one)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """A string a caller gives; `allow_nul` for a secret's value, which is stored encrypted."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "unwritable": "must not contain NUL characters or unpaired surrogates",
        "unencodable": "must not contain unpaired surrogates",
    }

    def __init__(self, *, allow_nul: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_nul = allow_nul

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.allow_nul:
            if not writable(text.replace("\x00", "")):
                raise self.make_error("unencodable")
        elif not writable(text):
            raise self.make_error("unwritable")
        return text


class Integer(fields.Integer):
    """An integer in a JSON body: a JSON integer (not 1.9, 2.0, "2" or true) between `minimum`
    and `maximum`, by default what an `integer` column holds."""

    def __init__(self, *, minimum: int = 1, maximum: int = INT32_MAX, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(minimum, maximum), **kwargs)


class QueryInteger(Integer):
    """An integer in a query string: decimal digits with an optional minus sign only ("1.0",
    "+1", " 1", "1_000" and other scripts' digits are not integers here)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and QUERY_INTEGER.fullmatch(value):
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Timestamp(fields.AwareDateTime):
    """A date and time with its UTC offset (ISO 8601), loaded as UTC. A moment UTC cannot
    hold (9999-12-31T23:59:59-05:00, 0001-01-01T00:00:00+01:00) is refused."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "out_of_range": "is out of range once in UTC (years 1 to 9999)",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("out_of_range") from None


class FullMatch(validate.Regexp):
    """`validate.Regexp` on the whole string: its `match` lets "prod\\n" through `^[a-z]+$`."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def storable_json(value: Any) -> None:
    """A validator of free-form JSON (a rotator's settings): nested at most `MAX_JSON_DEPTH`
    deep, and its keys and strings `writable`."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            raise ValidationError(f"nested more than {MAX_JSON_DEPTH} deep")
        if isinstance(item, dict):
            if not all(writable(key) for key in item):
                raise ValidationError("keys must not contain NUL characters or unpaired surrogates")
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and not writable(item):
            raise ValidationError("must not contain NUL characters or unpaired surrogates")


class ValueText(Text):
    """A secret's value: text, or a JSON object (a typed secret's fields, as the type documents
    them), kept as its canonical JSON text: keys sorted, no spaces. Documented as either."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "not_json": "must be text or a JSON object without NaN or Infinity",
    }

    def __init__(self, **kwargs: Any) -> None:
        oneof = {"oneOf": [{"type": "string"}, {"type": "object"}]}
        super().__init__(metadata=oneof | kwargs.pop("metadata", {}), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            return super()._deserialize(value, attr, data, **kwargs)
        storable_json(value)
        try:
            return json.dumps(
                value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
            )
        except ValueError:
            raise self.make_error("not_json") from None


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


class ScopeRefSchema(StrictSchema):
    type = Text(
        required=True,
        validate=validate.OneOf([t.value for t in ScopeType]),
        metadata={"description": "global, organization, team, project or user"},
    )
    id = Text(
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
    value = ValueText(
        required=True,
        allow_nul=True,
        metadata={
            "description": "The secret value: UTF-8 text, base64 with `encoding`, or a JSON "
            "object of a typed secret's fields (stored as its JSON text)."
        },
    )
    encoding = Text(load_default="utf-8", validate=validate.OneOf(ENCODINGS))

    @validates_schema
    def _decodable(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("encoding") == "base64" and data.get("value") is not None:
            try:
                base64.b64decode(data["value"], validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError("not valid base64", "value") from None


class SecretCreateSchema(ValueInputMixin, StrictSchema):
    name = Text(required=True, validate=validate.Length(1, 255))
    scope = fields.Nested(ScopeSchema, load_default=lambda: {"type": "global"})
    environment = Text(allow_none=True, load_default=None)
    type = Text(load_default="generic", validate=validate.Length(1, 64))
    description = Text(load_default="")
    tags = fields.Dict(keys=Text(), values=Text(), load_default=dict)
    consumer = Text(load_default="other", validate=validate.OneOf(CONSUMERS))
    expires_at = Timestamp(allow_none=True, load_default=None)
    not_before = Timestamp(allow_none=True, load_default=None)
    max_versions = Integer(allow_none=True, load_default=None)
    backend = Text(allow_none=True, load_default=None)


class VersionValidityMixin(Schema):
    expires_at = Timestamp(
        allow_none=True, load_default=None, metadata={"description": "This version expires."}
    )
    not_before = Timestamp(
        allow_none=True, load_default=None, metadata={"description": "Not served before."}
    )


class SecretVersionCreateSchema(ValueInputMixin, VersionValidityMixin, StrictSchema):
    pass


class SecretUpdateSchema(StrictSchema):
    """Metadata changes: an absent field stays as it is; `null` clears a clearable one."""

    description = Text()
    tags = fields.Dict(keys=Text(), values=Text())
    consumer = Text(validate=validate.OneOf(CONSUMERS))
    expires_at = Timestamp(allow_none=True)
    not_before = Timestamp(allow_none=True)
    max_versions = Integer(allow_none=True)


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
        reference_of,
        metadata={"description": "What consumers store instead of the value (see References)."},
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
        "reference": reference_of(secret),
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
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()
    environment = Text()
    type = Text()
    tag = fields.List(
        Text(validate=validate.Regexp(r"^[^=]+=.*$", error="expected key=value")),
        metadata={"description": "key=value; repeat to require several tags"},
    )
    prefix = Text()
    deleted = fields.Boolean(
        load_default=False, metadata={"description": "list soft-deleted secrets instead"}
    )
    page = QueryInteger(load_default=1)
    page_size = QueryInteger(load_default=50, maximum=500)


class SecretGetArgsSchema(StrictSchema):
    include_deleted = fields.Boolean(load_default=False)


class ValueArgsSchema(StrictSchema):
    version = QueryInteger()
    encoding = Text(
        validate=validate.OneOf(ENCODINGS),
        metadata={"description": "Force an encoding; by default UTF-8 text when it decodes."},
    )
    expand = fields.Boolean(
        load_default=False,
        metadata={"description": "Replace each `${secret://…}` with the value it names."},
    )


class PathArgsSchema(StrictSchema):
    environment = Text()


class PathValueArgsSchema(ValueArgsSchema):
    environment = Text()


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
    page = QueryInteger(load_default=1)
    page_size = QueryInteger(load_default=50, maximum=500)


class ScopeCreateSchema(ScopeRefSchema):
    parent = fields.Nested(ScopeRefSchema, required=True)


class ScopeItemSchema(Schema):
    class Meta:
        ordered = True

    type = fields.Function(
        lambda scope: scope.ref.type.value,
        metadata={"type": "string", "enum": [kind.value for kind in ScopeType]},
    )
    id = fields.Function(lambda scope: scope.ref.id, metadata={"type": "string"})
    parent = fields.Nested(
        ScopeOutSchema,
        allow_none=True,
        metadata={"description": "The scope it is below; null for the global scope."},
    )
    created_at = fields.DateTime(allow_none=True)


class ScopePageSchema(PageSchema):
    items = fields.List(fields.Nested(ScopeItemSchema))


class ScopeListArgsSchema(PageArgsSchema):
    type = Text(validate=validate.OneOf([t.value for t in ScopeType]))


class RoleBindingCreateSchema(StrictSchema):
    principal = Text(
        required=True, metadata={"description": "user:<id>, group:<id> or service:<name>"}
    )
    role = Text(required=True, validate=validate.OneOf([r.value for r in Role]))
    scope = fields.Nested(ScopeRefSchema, required=True)
    secret_id = fields.UUID(allow_none=True, load_default=None)
    name_pattern = Text(
        allow_none=True, load_default=None, metadata={"description": "a glob with * and ?"}
    )
    expires_at = Timestamp(allow_none=True, load_default=None)


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
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()
    principal = Text()


class ServiceAccountCreateSchema(StrictSchema):
    name = Text(required=True)
    scope = fields.Nested(ScopeRefSchema, required=True)
    description = Text(load_default="")


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
    scope_type = Text(required=True, validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()


class TokenCreateSchema(StrictSchema):
    description = Text(load_default="")
    expires_at = Timestamp(allow_none=True, load_default=None)


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


def _dump_scope(ref: ScopeRef) -> dict[str, Any]:
    return {"type": ref.type.value, "id": ref.id}


def _dump_resolved(item: dict[str, Any]) -> dict[str, Any]:
    return (
        {
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


class WhoAmISchema(Schema):
    principal = fields.String()
    kind = fields.String()
    groups = fields.List(fields.String())


class AuditQueryArgsSchema(StrictSchema):
    actor = Text()
    secret = fields.UUID(metadata={"description": "events about this secret"})
    resource = Text()
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()
    action = Text()
    outcome = Text(validate=validate.OneOf(["success", "denied", "not_found", "error"]))
    since = Timestamp()
    until = Timestamp()


class AuditEventsArgsSchema(AuditQueryArgsSchema):
    before_seq = QueryInteger(
        maximum=INT64_MAX, metadata={"description": "the cursor: next_cursor"}
    )
    limit = QueryInteger(load_default=100, maximum=1000)


class AuditExportArgsSchema(AuditQueryArgsSchema):
    format = Text(load_default="jsonl", validate=validate.OneOf(["jsonl", "csv"]))


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
    from_seq = Integer(maximum=INT64_MAX, load_default=None)
    to_seq = Integer(maximum=INT64_MAX, load_default=None)


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
    days = QueryInteger(load_default=30, minimum=0, maximum=3650)
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()


class SecretListSchema(Schema):
    items = fields.List(fields.Nested(SecretSchema))


class OverdueArgsSchema(StrictSchema):
    hours = QueryInteger(load_default=1, minimum=0, maximum=87600)
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text()


class StaleTokenArgsSchema(StrictSchema):
    days = QueryInteger(load_default=90, minimum=0, maximum=3650)


class StaleTokenSchema(Schema):
    token = fields.Nested(TokenSchema)
    account = fields.Nested(ServiceAccountSchema)


class StaleTokenListSchema(Schema):
    items = fields.List(fields.Nested(StaleTokenSchema))


# -- lifecycle: rollback, rotation, rotation policies ------------------------------------------


class RollbackSchema(StrictSchema):
    version = Integer(
        required=True,
        metadata={"description": "The version whose value becomes current again."},
    )


class RotateSchema(ValueInputMixin, VersionValidityMixin, StrictSchema):
    value = ValueText(
        load_default=None,
        allow_nul=True,
        metadata={"description": "The new value; without it the policy's rotator makes one."},
    )


class RotationPolicyInputSchema(StrictSchema):
    rotator = Text(
        required=True, validate=validate.Length(1, 64), metadata={"description": "random, webhook"}
    )
    settings = fields.Dict(
        keys=Text(),
        validate=storable_json,
        load_default=dict,
        metadata={"description": "The rotator's; keys by reference (secret_env, secret_file)."},
    )
    interval_seconds = Integer(allow_none=True, load_default=None)
    cron = Text(
        allow_none=True, load_default=None, metadata={"description": "Five fields, in UTC."}
    )
    grace_seconds = Integer(
        minimum=0,
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


# -- references ------------------------------------------------------------------------------

MAX_REFERENCES = 100


class ReferenceText(Text):
    """A reference as given; parsed (and refused with 400) by `core.references`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=validate.Length(min=1, max=REFERENCE_MAX_LENGTH),
            metadata={"description": "secret://TYPE/ID/NAME[?env=E][&version=N|&stage=S]"},
            **kwargs,
        )


class ReferenceValueArgsSchema(StrictSchema):
    ref = ReferenceText(required=True)
    encoding = Text(
        validate=validate.OneOf(ENCODINGS),
        metadata={"description": "Force an encoding; by default UTF-8 text when it decodes."},
    )
    expand = fields.Boolean(
        load_default=False,
        metadata={"description": "Replace each `${secret://…}` with the value it names."},
    )


class JsonBoolean(fields.Boolean):
    """`true` or `false` in a JSON body, nothing that merely reads as one (`0`, `"yes"`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ReferenceValuesRequestSchema(StrictSchema):
    references = fields.List(
        ReferenceText(),
        required=True,
        validate=validate.Length(min=1, max=MAX_REFERENCES),
        metadata={"description": f"Up to {MAX_REFERENCES} references, answered in this order."},
    )
    expand = JsonBoolean(load_default=False)


class ReferenceValueSchema(SecretValueSchema):
    """A value read by reference: the answer of a value read, and the reference as asked."""

    reference = fields.String()

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if many or not isinstance(obj, dict):
            return super().dump(obj, many=many)
        return super().dump(obj) | {"reference": obj["reference"]}


class ReferenceErrorSchema(Schema):
    code = fields.String()
    message = fields.String()


class ReferenceValueItemSchema(Schema):
    class Meta:
        ordered = True

    reference = fields.String()
    secret_id = fields.UUID(metadata={"description": "Absent when the item is an error."})
    version = fields.Integer()
    value = fields.String()
    encoding = fields.String()
    expires_at = fields.DateTime(allow_none=True)
    error = fields.Nested(
        ReferenceErrorSchema, metadata={"description": "Instead of a value: why there is none."}
    )


class ReferenceValuesSchema(Schema):
    items = fields.List(fields.Nested(ReferenceValueItemSchema))
