"""The Flask app factory: flask-smorest API under `/api/v1`, bearer authentication, request ids."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, g, request
from flask.sessions import NullSession, SessionInterface, SessionMixin
from flask_smorest import Api
from werkzeug.routing import RequestRedirect

from core.domain.callers import Caller
from core.domain.errors import Unauthenticated
from entrypoints.config import Settings, load_settings
from entrypoints.container import Container, check_configured
from entrypoints.http import (
    access,
    audit,
    backends,
    docs,
    health,
    keys,
    lifecycle,
    migrations,
    references,
    reports,
    resolve,
    secrets,
    status,
    stream,
    transfer,
    vault_compat,
)
from entrypoints.http.context import (
    bearer_token,
    current_container,
    record_request,
    request_id_of,
    request_info,
)
from entrypoints.http.cors import allow_origins
from entrypoints.http.errors import register_error_handlers
from entrypoints.http.headers import HTML_CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from entrypoints.http.hot_reads import HotReads
from entrypoints.http.metrics import route_template, serve_metrics
from entrypoints.http.proxies import behind_proxies
from entrypoints.http.schemas.common import ErrorSchema
from entrypoints.http.schemas.fields import ValueText
from entrypoints.logs import configure_logging

API_PREFIX = "/api/v1"
# `/metrics` checks its own token, if any (entrypoints/http/metrics.py); Vault's API its
# X-Vault-Token (entrypoints/http/vault_compat.py).
# The web console (`ui`) signs its people in with a session of its own (entrypoints/ui/web.py).
PUBLIC_BLUEPRINTS = frozenset(
    {"health", "api-docs", docs.blp.name, "metrics", vault_compat.blp.name, "ui"}
)
PUBLIC_ENDPOINTS = frozenset({"console_root"})  # `/`, to the console when it is served


class ServiceFlask(Flask):
    """Flask, with `ensure_sync` asking the code flags directly: the app, flask-smorest and
    webargs call it on every function of every request, and this API has no async views."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        code = getattr(func, "__code__", None)
        if code is not None and not code.co_flags & inspect.CO_COROUTINE:
            return func
        return super().ensure_sync(func)


class NoSessions(SessionInterface):
    """A bearer-token API keeps no sessions: every request gets the same empty null session
    (read-only: writing to it raises), instead of a new one per request."""

    def __init__(self) -> None:
        self._null = NullSession()

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self._null

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Never called: the null session is not saved."""


class ServiceApi(Api):  # type: ignore[misc]
    """flask-smorest's Api documenting this service's error body."""

    ERROR_SCHEMA = ErrorSchema


def create_app(settings: Settings | None = None, container: Container | None = None) -> Flask:
    settings = settings or load_settings()
    container = container or Container(settings=settings)
    configure_logging(settings.log_level, settings.log_format)
    check_configured(container)  # a bad setting stops the start, never a request

    app = ServiceFlask("secret_management")
    app.session_interface = NoSessions()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="Secret Management",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "One place for a platform's credentials."},
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer"},
                }
            },
            "security": [{"bearerAuth": []}],
        },
    )
    app.extensions["container"] = container

    api = ServiceApi(app)
    api.register_field(ValueText, None, None)  # no type: oneOf string or object
    api.register_blueprint(health.blp)
    api.register_blueprint(secrets.blp)
    api.register_blueprint(lifecycle.blp)
    api.register_blueprint(backends.blp)
    api.register_blueprint(access.blp)
    api.register_blueprint(resolve.blp)
    api.register_blueprint(audit.blp)
    api.register_blueprint(reports.blp)
    api.register_blueprint(transfer.blp)
    api.register_blueprint(keys.blp)
    api.register_blueprint(migrations.blp)
    api.register_blueprint(status.blp)
    api.register_blueprint(references.blp)
    api.register_blueprint(stream.blp)
    app.register_blueprint(docs.blp)  # not an API resource: outside the OpenAPI document
    app.register_blueprint(vault_compat.blp)  # Vault's API, not ours: nor is this one
    serve_metrics(app, container)  # nor is /metrics
    if settings.ui["enabled"]:  # the web console under /ui
        from entrypoints import ui

        ui.install(app, container)
    app.extensions["readiness"] = health.Readiness(container)
    register_error_handlers(app)
    app.before_request(start_request)
    app.before_request(authenticate)
    app.after_request(finish_request)
    cors = allow_origins(app, settings)
    # The hot value reads skip Flask's per-request machinery (entrypoints/http/hot_reads.py).
    hot_reads = HotReads(
        app, app.wsgi_app, before=(start_request, authenticate), after=(finish_request, *cors)
    )
    app.wsgi_app = behind_proxies(  # type: ignore[method-assign,assignment]
        hot_reads, settings.trusted_proxies
    )
    return app


def start_request() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id_of(request.headers.get("X-Request-Id", ""))


def authenticate() -> Response | None:
    if (
        request.blueprint in PUBLIC_BLUEPRINTS
        or request.endpoint in PUBLIC_ENDPOINTS
        or isinstance(request.routing_exception, RequestRedirect)  # `/ui` -> `/ui/`: no data
        or is_preflight()
    ):
        return None
    try:
        token = bearer_token(request.headers.get("Authorization", ""))
        principal = current_container().authenticator().authenticate(token)
        g.principal = Caller.of(principal, request_info())  # the views' actor
    except Unauthenticated as error:
        failures = current_container().failed_authentications()
        failures.refuse(error, request_info(), request.path[:255])
    return None


def finish_request(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    response.headers.update(SECURITY_HEADERS)
    if response.mimetype == "text/html":  # the console's pages set their own (entrypoints/ui)
        policy = g.get("content_security_policy", HTML_CONTENT_SECURITY_POLICY)
        response.headers["Content-Security-Policy"] = policy
    if "etag" in g:
        response.headers["ETag"] = g.etag
    record_request(
        current_container().metrics(),
        request.method,
        route_template(request.url_rule.rule if request.url_rule else None),
        response.status_code,
        g.get("started", time.perf_counter()),
        g.get("principal"),
    )
    return response


def is_preflight() -> bool:
    """Flask's own answer to `OPTIONS` on a route (the methods it takes; flask-cors adds the
    CORS headers): what a browser asks, without a token, before a call from another origin."""
    rule = request.url_rule
    automatic = getattr(rule, "provide_automatic_options", False)  # set by Flask's add_url_rule
    return request.method == "OPTIONS" and rule is not None and automatic
