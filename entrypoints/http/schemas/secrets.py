"""Schemas of secrets: create, update, list and the secret answered (with its fast dump)."""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import Schema, fields, validate

from core.domain.paging import Page, Slice
from core.domain.secrets import CONSUMERS, ListPosition, Secret
from core.domain.values import ScopeType
from core.references import reference_of
from entrypoints.http.cursor import decode_cursor, encode_cursor
from entrypoints.http.schemas.common import PageSchema
from entrypoints.http.schemas.fields import (
    Integer,
    QueryInteger,
    StrictSchema,
    Text,
    Timestamp,
    isoformat_or_none,
)
from entrypoints.http.schemas.scopes import ScopeOutSchema, ScopeSchema
from entrypoints.http.schemas.values import ValueInputMixin


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


class SecretUpdateSchema(StrictSchema):
    """Metadata changes: an absent field stays as it is; `null` clears a clearable one."""

    description = Text()
    tags = fields.Dict(keys=Text(), values=Text())
    consumer = Text(validate=validate.OneOf(CONSUMERS))
    expires_at = Timestamp(allow_none=True)
    not_before = Timestamp(allow_none=True)
    max_versions = Integer(allow_none=True)


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
        "expires_at": isoformat_or_none(secret.expires_at),
        "not_before": isoformat_or_none(secret.not_before),
        "max_versions": secret.max_versions,
        "created_at": isoformat_or_none(secret.created_at),
        "created_by": secret.created_by,
        "updated_at": isoformat_or_none(secret.updated_at),
        "updated_by": secret.updated_by,
        "deleted_at": isoformat_or_none(secret.deleted_at),
        "purge_after": isoformat_or_none(secret.purge_after),
        "revision": secret.revision,
        "previous_version": secret.previous_version,
        "pending_version": secret.pending_version,
        "reference": reference_of(secret),
    }


class SecretPageSchema(PageSchema):
    """An offset page (`page`) carries `total`; a keyset page (`after`) carries neither `page`
    nor `total` (null: no count, which grows with the table, as OpenBao's LIST and AWS's
    NextToken). Both carry `next` when more secrets follow: pass it as `after`."""

    page = fields.Integer(allow_none=True)
    total = fields.Integer(allow_none=True)
    next = fields.String(
        allow_none=True,
        metadata={"description": "the cursor of the next page (pass it as after); null at the end"},
    )
    items = fields.List(fields.Nested(SecretSchema))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if isinstance(obj, Slice):
            return {
                "page": None,
                "page_size": obj.page_size,
                "total": None,
                "next": encode_cursor(obj.next) if obj.next is not None else None,
                "items": [dump_secret(secret) for secret in obj.items],
            }
        if many or not isinstance(obj, Page):
            return super().dump(obj, many=many)
        more = bool(obj.items) and (obj.page - 1) * obj.page_size + len(obj.items) < obj.total
        return {
            "page": obj.page,
            "page_size": obj.page_size,
            "total": obj.total,
            "next": encode_cursor(ListPosition.of(obj.items[-1])) if more else None,
            "items": [dump_secret(secret) for secret in obj.items],
        }


class Cursor(Text):
    """`after`: a cursor from a page's `next`, or empty for the first page by cursor."""

    default_error_messages: ClassVar[dict[str, str]] = {
        **Text.default_error_messages,
        "invalid_cursor": "not a cursor this service made: pass a page's next unchanged",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text == "":
            return None
        try:
            return decode_cursor(text)
        except ValueError:
            raise self.make_error("invalid_cursor") from None


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
    after = Cursor(
        metadata={
            "description": "keyset paging of one scope (scope_type and scope_id): the next of "
            "the previous page, or empty for the first page. Its cost does not grow with the "
            "table; the answer has no total (null) and no page. Not with page."
        }
    )


class SecretGetArgsSchema(StrictSchema):
    include_deleted = fields.Boolean(load_default=False)
