"""The one place where errors become HTTP responses: `{"error": {code, message, details,
request_id}}`. Views have no try/except; nothing here echoes request bodies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, jsonify
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from core import errors

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
    errors.AuditUnavailable: 503,
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
    for cls in type(error).__mro__:
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


def handle_database_unreachable(error: DBAPIError) -> Response:
    """The database refused or dropped the connection: 503, the pool renews its connections.
    Any other database error is a bug (500, logged)."""
    if not (error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)):
        return handle_unexpected(error)
    log.error("the database is unreachable: %s", type(error.orig).__name__)
    return error_response(503, "database_unavailable", "the database is unavailable; try again")


def handle_unexpected(error: Exception) -> Response:
    # The traceback names code, not values: values only travel inside SecretValue.
    log.exception("unhandled error")
    return error_response(500, "internal_error", "internal server error")


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
    (DBAPIError, handle_database_unreachable),
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
