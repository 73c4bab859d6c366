"""The hot path's two requests answered without Flask's per-request machinery.

`GET /api/v1/secrets/{id}/value` and `GET /api/v1/scopes/{type}/{id}/secrets/{name}/value`,
without a query string, are what every other service of the platform sends on start and on
every cache miss. This WSGI middleware answers them itself: the same routing (Flask's own URL
map names the endpoint: a route added in front of these, or a rule changed, is honoured), the
same authentication, the same work (the function the declared view calls,
`entrypoints.http.secrets.HOT_READS`: audited and fail-closed as ever), the same error bodies
(from `entrypoints.http.errors`' handlers) and the same headers, without the request context,
flask-smorest and webargs layers around them (about a third of a read's time). Every other
request, and these with a query string (`version`, `encoding`, `environment`), from a browser
(`Origin`: CORS is flask-cors's) or in debug mode, goes to Flask unchanged. The views stay
declared with their schemas, so the OpenAPI document is the same; tests send each request both
ways and compare status, body, headers and audit events. Both ways count and log a request under
the same route template (Flask's rule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, g
from werkzeug.exceptions import HTTPException

from core.domain.audit import RequestInfo
from core.domain.callers import Caller
from core.domain.errors import Unauthenticated
from entrypoints.http import errors
from entrypoints.http.context import bearer_token, record_request, request_id_of
from entrypoints.http.headers import SECURITY_HEADERS
from entrypoints.http.metrics import route_template
from entrypoints.http.schemas.values import SecretValueSchema
from entrypoints.http.secrets import HOT_READS, ValueRead
from entrypoints.logs import current_request_id

if TYPE_CHECKING:
    from core.domain.values import Principal
    from entrypoints.container import Container

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# What a request reads: the view's function, its arguments (query's, path's), route template.
Route = tuple[ValueRead, dict[str, Any], dict[str, Any], str]


class HotReads:
    """WSGI middleware in front of `app.wsgi_app` (see the module's docstring)."""

    def __init__(
        self,
        app: Flask,
        flask_app: WsgiApp,
        before: Sequence[Callable[..., Any]],
        after: Sequence[Callable[..., Any]],
    ) -> None:
        """`before` and `after`: the app's request hooks that this class does the work of
        (request id, authentication; response headers). Any other hook on these requests,
        added later, would be skipped here: then everything goes to Flask."""
        self.flask_app = flask_app  # where everything else goes
        self._app = app
        self._container: Container = app.extensions["container"]
        self._dump = SecretValueSchema()
        # The last segment of the hot routes' rules ("value"): a request whose path ends in any
        # other is not matched twice (here, then in Flask). A rule changed later can only make
        # this skip a request, which Flask then answers.
        self._last_segments = frozenset(
            rule.rule.rsplit("/", 1)[-1]
            for rule in app.url_map.iter_rules()
            if rule.endpoint in HOT_READS
        )
        self.enabled = _only_hooks(app, before, after)
        if not self.enabled:
            log.warning("hot value reads go through Flask: the app has request hooks they skip")
        self.served = 0  # requests answered here: for tests (not exact under threads)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = None
        if (
            environ.get("REQUEST_METHOD") == "GET"
            and not environ.get("QUERY_STRING")
            and not environ.get("HTTP_ORIGIN")
            and environ.get("PATH_INFO", "").rsplit("/", 1)[-1] in self._last_segments
            and self.enabled
            and not self._app.debug
        ):
            route = self._route(environ)
        if route is None:
            return self.flask_app(environ, start_response)
        self.served += 1
        request_id = request_id_of(environ.get("HTTP_X_REQUEST_ID", ""))
        logged_as = current_request_id.set(request_id)  # log lines carry it, as in Flask
        try:
            return self._serve(environ, start_response, route, request_id)
        finally:
            current_request_id.reset(logged_as)

    def _route(self, environ: dict[str, Any]) -> Route | None:
        """What Flask's URL map routes the request to, if it is a read answered here. The map
        is bound as Flask binds it (`Flask.create_url_adapter`: trusted hosts, subdomains)."""
        request = self._app.request_class(environ)
        try:
            urls = self._app.create_url_adapter(request)
            assert urls is not None  # there is a request to bind to
            rule, path_args = urls.match(return_rule=True)
        except HTTPException:  # 404, 405, a redirect, a bad host: Flask gives those answers
            return None
        hot = HOT_READS.get(rule.endpoint)
        if hot is None:
            return None
        read, no_query = hot
        return read, no_query, path_args, route_template(rule.rule)

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        route: Route,
        request_id: str,
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        read, query_args, path_args, template = route
        # As werkzeug decodes it (the WSGI string's bytes, as UTF-8), for the failure's record.
        path = environ.get("PATH_INFO", "").encode("latin-1", "replace").decode("utf-8", "replace")
        principal: Principal | None = None  # for the request's log line
        container = self._container
        info = RequestInfo(
            request_id=request_id,
            source_ip=(environ.get("REMOTE_ADDR") or "")[:64] or None,
            user_agent=environ.get("HTTP_USER_AGENT", "")[:512] or None,
        )
        try:
            try:
                token = bearer_token(environ.get("HTTP_AUTHORIZATION", ""))
                caller = Caller.of(container.authenticator().authenticate(token), info)
            except Unauthenticated as error:
                container.failed_authentications().refuse(error, info, path[:255])
            principal = caller
            answer = read(container.read_service(), caller, query_args, **path_args)
            body = self._app.json.dumps(  # as flask-smorest's jsonify writes it
                self._dump.dump(answer), separators=(",", ":")
            )
        except Exception as error:  # the registered handlers' answer, as Flask would give it
            return self._error(
                environ, start_response, error, template, request_id, started, principal
            )
        data = (body + "\n").encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("X-Request-Id", request_id),
                *SECURITY_HEADERS,
            ],
        )
        record_request(container.metrics(), "GET", template, 200, started, principal)
        return [data]

    def _error(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        error: Exception,
        template: str,
        request_id: str,
        started: float,
        principal: Principal | None,
    ) -> Iterable[bytes]:
        with self._app.app_context():
            g.request_id = request_id
            response = errors.response_for(error)
        response.headers["X-Request-Id"] = request_id
        response.headers.update(SECURITY_HEADERS)
        record_request(
            self._container.metrics(), "GET", template, response.status_code, started, principal
        )
        return response(environ, start_response)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"HotReads(served={self.served})"


def _only_hooks(
    app: Flask, before: Sequence[Callable[..., Any]], after: Sequence[Callable[..., Any]]
) -> bool:
    """Whether the requests answered here would run exactly `before` and `after` in Flask:
    the app's own hooks, none of the secrets blueprint's, no teardown or URL preprocessing,
    and no `SERVER_NAME` (with which Flask answers a request for another host itself)."""
    scopes = (None, "secrets")
    return (
        not app.config.get("SERVER_NAME")
        and list(app.before_request_funcs.get(None, [])) == list(before)
        and list(app.after_request_funcs.get(None, [])) == list(after)
        and not any(app.before_request_funcs.get(scope) for scope in scopes[1:])
        and not any(app.after_request_funcs.get(scope) for scope in scopes[1:])
        and not any(app.teardown_request_funcs.get(scope) for scope in scopes)
        and not any(app.url_value_preprocessors.get(scope) for scope in scopes)
    )
