"""The one place where errors become HTTP responses: `{"error": {code, message, details,
request_id}}`. Views have no try/except; nothing here echoes request bodies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from core.domain import errors
from entrypoints.http.schemas.common import ErrorSchema

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.ServiceError], int] = {
    errors.ValueTooLarge: 413,
    errors.InvalidSecretValue: 422,
    errors.InvalidImport: 422,
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.NotYetValid: 409,
    errors.VersionUnavailable: 409,
    errors.Conflict: 409,
    errors.Expired: 410,
    errors.PreconditionFailed: 412,
    errors.BackendAuthFailed: 502,
    errors.RotationFailed: 502,
    errors.BackendUnavailable: 503,
    errors.DatabaseUnavailable: 503,
    errors.AuditUnavailable: 503,
    errors.TooManyStreams: 503,
    errors.ValueIntegrityError: 500,
    errors.ConfigurationError: 500,
}

# Codes for HTTP errors raised by Flask, werkzeug or webargs rather than by core.
CODE_BY_STATUS = {
    400: "validation_error",
    401: "unauthenticated",
    404: "not_found",
    405: "method_not_allowed",
    412: "precondition_failed",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "rate_limited",
}
INTERNAL_ERROR = "internal_error"

# What each error status means to a caller, and an example of its answer (code, message,
# details): the OpenAPI document's error responses (`documented`).
MEANINGS: dict[int, tuple[str, str, str, dict[str, Any]]] = {
    400: (
        "The request breaks the document or a rule of the service: `details.fields` names "
        "each field (never its value).",
        "validation_error",
        "request validation failed",
        {"fields": {"name": ["Missing data for required field."]}},
    ),
    401: (
        "No bearer token, or one that is not valid (unknown, expired or revoked).",
        "unauthenticated",
        "missing bearer token",
        {},
    ),
    403: (
        "The caller may see the resource but not do this.",
        "forbidden",
        "user:alice may not write secret OPENAI_API_KEY",
        {},
    ),
    404: (
        "Nothing of that name, or nothing the caller may see.",
        "not_found",
        "no scope project/p-42",
        {},
    ),
    409: (
        "The resource's state does not allow it (`details` says what is in the way).",
        "conflict",
        "secret 'OPENAI_API_KEY' in scope project/p-42 already exists",
        {"scope": "project/p-42", "name": "OPENAI_API_KEY"},
    ),
    410: (
        "The secret expired: its value is no longer served.",
        "secret_expired",
        "secret OPENAI_API_KEY expired",
        {},
    ),
    412: (
        "`If-Match` names an older revision: read the resource again.",
        "precondition_failed",
        "the secret changed since revision 3",
        {},
    ),
    413: (
        "The request, or the value, is larger than allowed.",
        "value_too_large",
        "value is 70000 bytes; the limit is 65536 bytes",
        {"field": "value", "limit": 65536, "size": 70000},
    ),
    422: (
        "The value breaks its secret type's rules, or the file has errors: `details` lists "
        "each problem (never a value). With `expand=true`: a `${secret://…}` reference that "
        "forms a cycle, nests deeper than 10 or cannot be read by the caller (`details` name it).",
        "invalid_secret_value",
        "the value is not a valid aws_credentials",
        {"problems": [{"field": "secret_access_key", "message": "required"}]},
    ),
    429: (
        "Too many failed authentications from this address: try again after `Retry-After`.",
        "rate_limited",
        "too many failed authentications from this address; try again later",
        {},
    ),
    502: (
        "A storage backend refused the service's credentials, or a rotation target failed.",
        "backend_auth_failed",
        "backend 'vault' refused the service's credentials",
        {},
    ),
    503: (
        "The database, the audit trail or a storage backend is unavailable: try again.",
        errors.DatabaseUnavailable.code,
        "the database is unavailable; try again",
        {},
    ),
}
REQUEST_ID = "5f0c2a9e4b7d41c8a3e1d2b6f7089a1c"
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer."}},
    429: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds until the next attempt may be checked.",
        }
    },
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": g.get("request_id"),
        }
    }
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="secret-management"'
    return response


def status_of(error: errors.ServiceError) -> int:
    return status_of_class(type(error))


def status_of_class(error_class: type[errors.ServiceError]) -> int:
    for cls in error_class.__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def handle_service_error(error: errors.ServiceError) -> Response:
    status = status_of(error)
    if status >= 500:
        log.error("%s: %s", error.code, error.message)
    return error_response(status, error.code, error.message, error.details)


def handle_http_exception(error: HTTPException) -> Response:
    """Flask/werkzeug/webargs errors. Validation messages name fields, never their values."""
    status = error.code or 500
    details: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    if "messages" in data:  # webargs: {"json": {"field": ["message"]}}
        details["fields"] = _flatten_locations(data["messages"])
        status = 400
    message = data.get("message") or error.description or error.name
    if status == 400 and details.get("fields"):
        message = "request validation failed"
    response = error_response(status, CODE_BY_STATUS.get(status, "http_error"), message, details)
    # werkzeug's own headers of the error (405: `Allow`), then webargs' (none unless a view sets).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    if isinstance(error, MethodNotAllowed) and error.valid_methods:  # werkzeug's order varies
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    for name, value in (data.get("headers") or {}).items():
        response.headers[name] = value
    return response


def handle_unexpected(error: Exception) -> Response:
    # The traceback names code, not values: values only travel inside SecretValue.
    log.exception("unhandled error")
    return error_response(500, INTERNAL_ERROR, "internal server error")


def _flatten_locations(messages: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


HANDLERS: tuple[tuple[type[Exception], Callable[[Any], Response]], ...] = (
    (errors.ServiceError, handle_service_error),
    (HTTPException, handle_http_exception),
    (Exception, handle_unexpected),
)


def register_error_handlers(app: Flask) -> None:
    for error_class, handler in HANDLERS:
        app.register_error_handler(error_class, handler)


def response_for(error: Exception) -> Response:
    """What the registered handlers answer for `error` (in an app context), for code that
    answers outside Flask's dispatch (`entrypoints.http.hot_reads`)."""
    for error_class, handler in HANDLERS:
        if isinstance(error, error_class):
            return handler(error)
    raise error  # pragma: no cover - Exception is the last entry


def codes_of(status: int) -> list[str]:
    """Every `code` the service answers with `status`: core's errors mapped to it (subclasses
    included), and the HTTP layer's own."""
    codes, pending = set(), [errors.ServiceError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if status_of_class(cls) == status:
            codes.add(cls.code)
    http_code = {**CODE_BY_STATUS, 500: INTERNAL_ERROR}.get(status)
    return sorted(codes | ({http_code} if http_code else set()))


def documented(status: int) -> dict[str, Any]:
    """The OpenAPI response of an error status: the error body, what the status means and its
    codes, an example (as flask-smorest's `alt_response` records one)."""
    meaning, code, message, details = MEANINGS[status]
    codes = codes_of(status)
    example = {"code": code, "message": message, "details": details, "request_id": REQUEST_ID}
    response = {
        "schema": ErrorSchema,
        "description": f"{meaning} Codes: {', '.join(f'`{each}`' for each in codes)}.",
        "example": {"error": example},
        "content_type": None,
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response
