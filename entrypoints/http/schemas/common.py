"""Schemas shared by every resource: pages, the error body, health."""

from __future__ import annotations

from marshmallow import Schema, fields

from entrypoints.http.schemas.fields import QueryInteger, StrictSchema


class PageSchema(Schema):
    """What every paginated list answers besides its items."""

    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


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
