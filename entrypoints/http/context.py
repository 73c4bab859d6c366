"""Per-request helpers for views: the container, the caller's If-Match, the response ETag."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import TYPE_CHECKING, cast

from flask import current_app, g, request

from core.domain.audit import RequestInfo
from core.domain.errors import InvalidInput, Unauthenticated
from core.domain.values import Principal

if TYPE_CHECKING:
    from adapters.metrics import ServiceMetrics
    from entrypoints.container import Container

ETAG = re.compile(r'^(?:W/)?"rev-(\d{1,18})"$')
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("secret_management.access")
ANONYMOUS = Principal(id="anonymous", kind="anonymous")


def request_id_of(supplied: str) -> str:
    """The caller's `X-Request-Id` when it is a sane one, else a new random id."""
    return supplied if REQUEST_ID.fullmatch(supplied) else os.urandom(16).hex()


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header; `Unauthenticated` otherwise."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required")
    return token.strip()


def current_container() -> Container:
    return cast("Container", current_app.extensions["container"])


def request_info() -> RequestInfo:
    """This request's facts as its audit events hold them: its id, source address and agent."""
    return RequestInfo(
        request_id=g.get("request_id"),
        source_ip=(request.remote_addr or "")[:64] or None,
        user_agent=request.headers.get("User-Agent", "")[:512] or None,
    )


def set_etag(revision: int) -> None:
    g.etag = f'"rev-{revision}"'


def expected_revision() -> int | None:
    """The revision named by `If-Match`, or None when the caller sent none (or `*`)."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    match = ETAG.fullmatch(header)
    if match is None:
        raise InvalidInput(
            'If-Match must be an ETag returned by this API, such as "rev-3"',
            details={"header": "If-Match"},
        )
    return int(match.group(1))


def record_request(
    metrics: ServiceMetrics,
    method: str,
    route: str,
    status: int,
    started: float,
    principal: Principal | None,
) -> None:
    """Count the request and write its line, `started` being its `time.perf_counter()`."""
    seconds = time.perf_counter() - started
    metrics.observe_request(method, route, status, seconds)
    log_access(method, route, status, seconds, principal)


def log_access(
    method: str, route: str, status: int, seconds: float, principal: Principal | None
) -> None:
    """The request's line (INFO): method, route template, status, time taken and caller, as
    fields of their own in the JSON format; the request id comes with every record. Never the
    path nor its query string, which may hold a secret's name."""
    duration_ms = round(seconds * 1000, 1)
    caller = principal.id if principal is not None else "-"
    access_log.info(
        "%s %s %s %.1fms %s",
        method,
        route,
        status,
        duration_ms,
        caller,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "principal": caller,
        },
    )
