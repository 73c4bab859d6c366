"""`/api/v1/audit`: query, export (JSON Lines or CSV, streamed) and verify the audit trail."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Response, g, stream_with_context
from flask.views import MethodView

from core.audit_service import AuditService
from core.domain.audit import AuditEvent, AuditFilter
from core.domain.errors import Forbidden, NotFound
from entrypoints.http import examples
from entrypoints.http.blueprint import Blueprint, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.audit import (
    AuditEventPageSchema,
    AuditEventsArgsSchema,
    AuditEventSchema,
    AuditExportArgsSchema,
    AuditVerificationSchema,
    AuditVerifyArgsSchema,
)
from entrypoints.http.secrets import scope_ref

blp = Blueprint(
    "audit", __name__, url_prefix="/api/v1/audit", description="The audit trail (admins, auditors)."
)

EXPORT_FIELDS = list(AuditEventSchema().fields)
# What makes a spreadsheet read a cell as a formula (OWASP, CSV injection): such a cell of the
# export starts with a quote instead.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
JSON_LINES = "application/x-ndjson"
CSV = "text/csv"
FILE = {"type": "string"}
EXPORTED = "JSON Lines (`jsonl`) or CSV (`csv`), streamed, oldest first: one event a line."


def audit_service() -> AuditService:
    return current_container().audit_service()


def criteria_of(args: dict[str, Any]) -> tuple[AuditFilter, Any]:
    scope = scope_ref(args["scope_type"], args.get("scope_id")) if "scope_type" in args else None
    resource = f"secret:{args['secret']}" if "secret" in args else args.get("resource")
    criteria = AuditFilter(
        actor=args.get("actor"),
        resource=resource,
        action=args.get("action"),
        outcome=args.get("outcome"),
        since=args.get("since"),
        until=args.get("until"),
        before_seq=args.get("before_seq"),
    )
    return criteria, scope


@blp.route("/events")
class AuditEvents(MethodView):
    @blp.arguments(AuditEventsArgsSchema(), location="query")
    @blp.response(200, AuditEventPageSchema, example=examples.AUDIT_EVENT_PAGE)
    @raises(Forbidden, NotFound)
    @operation_id("list_audit_events")
    def get(self, args: dict[str, Any]) -> Any:
        """Events, newest first; pass `next_cursor` as `before_seq` for the next page."""
        criteria, scope = criteria_of(args)
        events = audit_service().search(g.principal, criteria, scope, args["limit"])
        full_page = len(events) == args["limit"]
        return {"items": events, "next_cursor": events[-1].seq if full_page else None}


@blp.route("/export")
class AuditExport(MethodView):
    @blp.arguments(AuditExportArgsSchema(), location="query")
    @blp.response(
        200,
        FILE,
        content_type=JSON_LINES,
        description=EXPORTED,
        example=examples.AUDIT_EXPORT_JSONL,
    )
    @blp.alt_response(
        200,
        schema=FILE,
        content_type=CSV,
        description=EXPORTED,
        example=examples.AUDIT_EXPORT_CSV,
        success=True,
    )
    @raises(Forbidden, NotFound)
    @operation_id("export_audit_events")
    def get(self, args: dict[str, Any]) -> Any:
        """Export matching events as JSON Lines or CSV."""
        criteria, scope = criteria_of(args)
        events = audit_service().export(g.principal, criteria, scope)
        if args["format"] == "csv":
            return Response(stream_with_context(as_csv(events)), mimetype=CSV)
        return Response(stream_with_context(as_json_lines(events)), mimetype=JSON_LINES)


@blp.route("/verify")
class AuditVerify(MethodView):
    @blp.arguments(AuditVerifyArgsSchema(), required=False, example=examples.AUDIT_VERIFY)
    @blp.response(200, AuditVerificationSchema, example=examples.AUDIT_VERIFICATION)
    @raises(Forbidden)
    @operation_id("verify_audit_chain")
    def post(self, args: dict[str, Any]) -> Any:
        """Check the hash chain (or a range) and its signed checkpoints; the first broken link."""
        return audit_service().verify(g.principal, args["from_seq"], args["to_seq"])


def as_json_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    schema = AuditEventSchema()
    for event in events:
        yield json.dumps(schema.dump(event), separators=(",", ":")) + "\n"


def as_csv(events: Iterator[AuditEvent]) -> Iterator[str]:
    schema = AuditEventSchema()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for event in events:
        row = schema.dump(event)
        row["details"] = json.dumps(row["details"], sort_keys=True)
        writer.writerow({name: inert(cell) for name, cell in row.items()})
        yield drain(buffer)
    yield drain(buffer)


def inert(cell: Any) -> Any:
    """A CSV cell that no spreadsheet takes for a formula."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
