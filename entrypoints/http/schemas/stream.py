"""Schemas of the change stream: its arguments and the events it sends."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.domain.values import ScopeType
from core.events import EVENT_TYPES
from entrypoints.http.schemas.fields import QueryInteger, StrictSchema, Text

MAX_WAIT_SECONDS = 60  # the longest a poll waits


class StreamArgsSchema(StrictSchema):
    after = Text(
        validate=validate.Regexp(r"^(now|[0-9]{1,18})$"),
        metadata={
            "description": "Events after this cursor that are still kept (at least 24 h); "
            "`now` (the default) starts at the head. The `Last-Event-ID` header, if sent, wins."
        },
    )
    scope_type = Text(validate=validate.OneOf([t.value for t in ScopeType]))
    scope_id = Text(metadata={"description": "With scope_type: that scope and below."})
    secret = fields.UUID(metadata={"description": "Only the events of this secret."})
    max_seconds = QueryInteger(
        minimum=1,
        maximum=86400,
        metadata={"description": "End the stream after this many seconds (default: never)."},
    )


class PollArgsSchema(StrictSchema):
    after = StreamArgsSchema._declared_fields["after"]
    scope_type = StreamArgsSchema._declared_fields["scope_type"]
    scope_id = StreamArgsSchema._declared_fields["scope_id"]
    secret = StreamArgsSchema._declared_fields["secret"]
    wait = QueryInteger(
        minimum=0,
        maximum=MAX_WAIT_SECONDS,
        load_default=0,
        metadata={"description": "Seconds to wait for the first event when there is none."},
    )


class EventSecretSchema(Schema):
    class Meta:
        ordered = True

    id = fields.UUID()
    scope = fields.Dict(allow_none=True, metadata={"description": "`{type, id}`"})
    name = fields.String(allow_none=True, metadata={"description": "null once purged"})
    environment = fields.String(allow_none=True)
    reference = fields.String(allow_none=True, metadata={"description": "null once purged"})


class ChangeEventSchema(Schema):
    class Meta:
        ordered = True

    id = fields.Integer(metadata={"description": "The cursor: resume after it."})
    type = fields.String(validate=validate.OneOf(EVENT_TYPES))
    time = fields.String()
    secret = fields.Nested(EventSecretSchema)
    version = fields.Integer(allow_none=True)


class ChangeEventPageSchema(Schema):
    class Meta:
        ordered = True

    items = fields.List(fields.Dict(), metadata={"description": "The events, oldest first."})
    next = fields.Integer(metadata={"description": "The cursor to ask `after` next time."})
