"""`/api/v1/imports` and `/api/v1/exports`: the secrets of a scope at once, as files of a format
plugin; `/api/v1/formats` and `/api/v1/secret-types` list the plugins' formats and types.

An import is a `multipart/form-data` upload (the file streams to a temporary file, up to
`max_import_bytes`, then 413); an export answers with the file itself.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from flask import Request, Response, g, request
from flask.views import MethodView
from marshmallow import Schema
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict

from core.domain.errors import BackendAuthFailed, Conflict, Forbidden, InvalidImport, NotFound
from core.exports import ExportService
from core.imports import ImportService
from core.transfer_requests import ExportRequest, ImportReport, ImportRequest, entry_error_details
from entrypoints.http import examples
from entrypoints.http.blueprint import Blueprint, QueryParser, operation_id, raises
from entrypoints.http.context import current_container
from entrypoints.http.schemas.transfer import (
    ExportArgsSchema,
    FormatListSchema,
    ImportFormSchema,
    ImportReportSchema,
    SecretTypeListSchema,
)
from entrypoints.http.secrets import scope_ref

MULTIPART = "multipart"
# The file of an export, by its format's media type (`format_json`, `format_dotenv`), or sealed.
JSON_FILE = {"type": "object"}
TEXT_FILE = {"type": "string"}
SEALED_FILE = {"type": "string", "format": "binary"}
EXPORTED = (
    "The export file: JSON (`json`, `json-flat`), .env lines (`dotenv`), or sealed with the "
    "passphrase; `Content-Disposition` names it."
)
EXPORT_HEADERS = {
    "Content-Disposition": {
        "schema": {"type": "string"},
        "description": "attachment, and the file's name: SCOPE_TYPE-SCOPE_ID-ENVIRONMENT.EXTENSION",
    },
    "X-Export-Format": {"schema": {"type": "string"}, "description": "The format written."},
    "X-Export-Secrets": {"schema": {"type": "integer"}, "description": "Secrets in the file."},
    "X-Export-Values": {"schema": {"type": "integer"}, "description": "Values in the file."},
    "X-Export-Omitted": {
        "schema": {"type": "string"},
        "description": "JSON: the secrets whose value is left out, each with the reason.",
    },
}


class TransferParser(QueryParser):
    """webargs' Flask parser with a `multipart` location: form fields and files together."""


parser = TransferParser()


@parser.location_loader(MULTIPART)
def load_multipart(req: Request, schema: Schema) -> MultiDictProxy:
    return MultiDictProxy(CombinedMultiDict([req.form, req.files]), schema)


class TransferBlueprint(Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = parser
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING: ClassVar[dict[str, str]] = {
        **Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        MULTIPART: "multipart/form-data",
    }


blp = TransferBlueprint(
    "transfer",
    __name__,
    url_prefix="/api/v1",
    description="Import and export the secrets of a scope; the formats and secret types.",
)


@blp.before_request
def allow_import_files() -> None:
    """An import's body is a file: its own limit, `max_import_bytes`, instead of the request
    limit (werkzeug answers 413 past it, before the file is read)."""
    if request.endpoint == "transfer.Imports":
        request.max_content_length = current_container().settings().max_import_bytes


def import_service() -> ImportService:
    return current_container().import_service()


def export_service() -> ExportService:
    return current_container().export_service()


@blp.route("/imports")
class Imports(MethodView):
    @blp.arguments(ImportFormSchema(), location=MULTIPART)
    @blp.response(200, ImportReportSchema)
    @raises(Forbidden, NotFound, Conflict, InvalidImport, BackendAuthFailed)
    @operation_id("import_secrets")
    def post(self, data: dict[str, Any]) -> Any:
        """Import a file into a scope and environment: the diff per name (and, on a dry run,
        the errors by line). Nothing is imported from a file with errors (422), nor on a
        conflict under `fail` (409)."""
        upload = data["file"]
        parent = (
            scope_ref(data["parent_type"], data.get("parent_id")) if "parent_type" in data else None
        )
        import_request = ImportRequest(
            scope=scope_ref(data["scope_type"], data.get("scope_id")),
            parent=parent,
            environment=data.get("environment"),
            format=data.get("format"),
            filename=upload.filename or "",
            strategy=data["strategy"],
            dry_run=data["dry_run"],
            backend=data.get("backend"),
            passphrase=data.get("passphrase"),
        )
        report = import_service().import_secrets(g.principal, import_request, upload.stream)
        return report_body(report)


@blp.route("/exports")
class Exports(MethodView):
    @blp.arguments(ExportArgsSchema(), example=examples.EXPORT)
    @blp.response(
        200,
        JSON_FILE,
        content_type="application/json",
        description=EXPORTED,
        example=examples.EXPORT_JSON,
        headers=EXPORT_HEADERS,
    )
    @blp.alt_response(
        200,
        schema=TEXT_FILE,
        content_type="text/plain",
        description=EXPORTED,
        example=examples.EXPORT_DOTENV,
        headers=EXPORT_HEADERS,
        success=True,
    )
    @blp.alt_response(
        200,
        schema=SEALED_FILE,
        content_type="application/octet-stream",
        description=EXPORTED,
        headers=EXPORT_HEADERS,
        success=True,
    )
    @raises(Forbidden, NotFound, BackendAuthFailed)
    @operation_id("export_secrets")
    def post(self, data: dict[str, Any]) -> Any:
        """Export a scope's secrets of one environment: metadata by default; values for admins
        of the scope (`include_values`), every one audited; sealed with `passphrase`."""
        scope = data["scope"]
        exported = export_service().export_secrets(
            g.principal,
            ExportRequest(
                scope=scope_ref(scope["type"], scope.get("id")),
                format=data["format"],
                environment=data["environment"],
                include_values=data["include_values"],
                include_versions=data["include_versions"],
                passphrase=data["passphrase"],
            ),
        )
        omitted = [{"name": name, "reason": reason} for name, reason in exported.omitted]
        return Response(
            exported.content,
            content_type=exported.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{exported.filename}"',
                "X-Export-Format": exported.format,
                "X-Export-Secrets": str(exported.secrets),
                "X-Export-Values": str(exported.values),
                "X-Export-Omitted": json.dumps(omitted, separators=(",", ":")),
            },
        )


@blp.route("/formats")
class Formats(MethodView):
    @blp.response(200, FormatListSchema)
    @operation_id("list_formats")
    def get(self) -> Any:
        """The import/export formats the installed plugins contribute."""
        return {"items": list(current_container().formats())}


@blp.route("/secret-types")
class SecretTypes(MethodView):
    @blp.response(200, SecretTypeListSchema)
    @operation_id("list_secret_types")
    def get(self) -> Any:
        """The secret types the installed plugins contribute: their fields and which are secret."""
        return {"items": sorted(current_container().secret_types(), key=lambda t: t.name)}


def report_body(report: ImportReport) -> dict[str, Any]:
    return {
        "format": report.format,
        "strategy": report.strategy,
        "dry_run": report.dry_run,
        "counts": report.counts,
        "items": report.items,
        "errors": [entry_error_details(error) for error in report.errors],
    }
