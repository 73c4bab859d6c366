"""`/metrics` for Prometheus, the route templates requests are counted and logged under, and
failed authentications counted by reason.

How `/metrics` is reached is the operator's choice (`[metrics]`, `metrics_access`): behind a
bearer token of its own (`token_env`, compared in constant time; a wrong one is refused, limited
and audited like any bad token), on a listener of its own (`port`: then not here), open in
development mode only (which listens on loopback), and otherwise not served. A request is
counted under its route's template (`/api/v1/secrets/{secret_id}/value`), never its path: a path
holds ids and names, which would make a series per secret and may be sensitive.
"""

from __future__ import annotations

import enum
import functools
import hmac
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

from flask import Blueprint, Flask, Response, request

from core.audit import AuditTrail
from core.domain.audit import RequestInfo
from core.domain.errors import Unauthenticated
from entrypoints.config import Settings
from entrypoints.http.context import bearer_token, current_container, request_info
from entrypoints.http.failed_auth import FailedAuthentications, TooManyFailedAuthentications

if TYPE_CHECKING:
    from adapters.metrics import ServiceMetrics
    from entrypoints.container import Container

# A rule's variable, `<uuid:secret_id>` or `<string(maxlength=128):scope_id>`: shown `{secret_id}`.
VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
# What a request that matched no route is counted and logged under.
UNMATCHED = "unmatched"
# prometheus-client's: the directory where every process of a server writes its counts.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class MetricsAccess(enum.Enum):
    OFF = "off"  # not served (disabled, or production without a token or a port)
    TOKEN = "token"  # noqa: S105 - here, with `Authorization: Bearer <the token in token_env>`
    OPEN = "open"  # here, to anyone who reaches the server (development mode: loopback)
    PORT = "port"  # on a listener of its own, not here (entrypoints/server.py)


def metrics_access(settings: Settings) -> MetricsAccess:
    options = settings.metrics
    if not options["enabled"]:
        return MetricsAccess.OFF
    if options.get("port"):
        return MetricsAccess.PORT
    if options.get("token_env"):
        return MetricsAccess.TOKEN
    return MetricsAccess.OFF if settings.production else MetricsAccess.OPEN


@functools.lru_cache(maxsize=1024)
def route_template(rule: str | None) -> str:
    """The template a request is counted and logged under: its URL rule with each variable
    shown by name, or `unmatched`."""
    return VARIABLE.sub(r"{\1}", rule) if rule else UNMATCHED


def serve_metrics(app: Flask, container: Container) -> None:
    """Add `/metrics` to the app, if it is to be served here."""
    settings = container.settings()
    access = metrics_access(settings)
    if access in (MetricsAccess.TOKEN, MetricsAccess.OPEN):
        metrics = container.exported_metrics()
        token_env = settings.metrics.get("token_env", "")
        app.register_blueprint(metrics_blueprint(metrics, access, container.environ(), token_env))


def metrics_blueprint(
    metrics: ServiceMetrics, access: MetricsAccess, environ: Mapping[str, str], token_env: str
) -> Blueprint:
    """The `/metrics` route (given `access` TOKEN or OPEN)."""
    token = environ[token_env].encode() if access is MetricsAccess.TOKEN else None
    blp = Blueprint("metrics", __name__)

    @blp.get("/metrics")
    def scrape() -> Response:
        if token is not None:
            _check_token(token)
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return Response(body, content_type=content_type)

    return blp


def _check_token(expected: bytes) -> None:
    try:
        given = bearer_token(request.headers.get("Authorization", "")).encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthenticated("invalid metrics token")
    except Unauthenticated as error:
        failures = current_container().failed_authentications()
        failures.refuse(error, request_info(), request.path[:255])


class CountedFailedAuthentications(FailedAuthentications):
    """Failed authentications, counted by reason: `invalid_token` (answered 401) or
    `rate_limited` (429)."""

    def __init__(self, per_window: int, trail: AuditTrail, metrics: ServiceMetrics) -> None:
        super().__init__(per_window, trail)
        self._invalid = metrics.auth_failures.labels("invalid_token")
        self._limited = metrics.auth_failures.labels("rate_limited")

    def refuse(self, error: Unauthenticated, request: RequestInfo, resource: str) -> NoReturn:
        try:
            super().refuse(error, request, resource)
        except TooManyFailedAuthentications:
            self._limited.inc()
            raise
        except Unauthenticated:
            self._invalid.inc()
            raise
