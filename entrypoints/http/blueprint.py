"""The blueprint class of every API module: flask-smorest's, with a webargs parser that

- loads the query arguments of a request without a query string from an empty mapping. webargs
  would look each declared argument up in the empty query, and werkzeug raises (and webargs
  catches) an exception for every one that is missing: on the hot read path that was a cost per
  request. The arguments, their validation and their documentation are the same;
- answers 400 for a JSON body that Python's parser gives up on with something else than a
  syntax error: nested too deep (`RecursionError`), or an integer of more than 4,300 digits;
- answers 400 (not webargs' 422) for arguments that fail their schema, and documents so;

and the one place where each operation's OpenAPI document is completed (`Blueprint.complete`):

- `operationId`: the HTTP method and the view's class in snake case (`SecretItem.get` is
  `get_secret`: a trailing `Item` or `View` is dropped), unless the view names its own
  (`operation_id`);
- summary and description: the view's docstring (its first sentence, and the whole of it);
- error responses: those the operation's shape implies (`implied_errors`) and the statuses of
  the core errors its view declares (`raises`: `Forbidden`, `Conflict`, `Expired`...) in the
  error map that answers them (`entrypoints.http.errors.STATUS_BY_ERROR`), each with the error
  body, the codes the service answers with that status and an example
  (`entrypoints.http.errors.documented`);
- `security: []` for the operations of a public blueprint (the probes);
- the path parameters a view reads as text (`PATH_PARAMETERS`): scope types, scope ids, secret
  names (the configured pattern) and backend names (the configured ones), so that a request the
  document allows names something that can exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any, NoReturn, TypeVar

import flask_smorest
from flask import Flask, Request
from marshmallow import Schema
from webargs.flaskparser import FlaskParser, abort

from core.domain.errors import (
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unauthenticated,
    ValueTooLarge,
)
from core.domain.values import ScopeType
from core.policy import SCOPE_ID_PATTERN
from entrypoints.config import Settings
from entrypoints.http.errors import documented, status_of_class
from entrypoints.http.failed_auth import TooManyFailedAuthentications

View = TypeVar("View", bound=Callable[..., Any])

# The schema of each path parameter a view reads as text, from the settings of the app
# documented; the route's own bounds (`maxLength`) are kept.
PATH_PARAMETERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "scope_type": lambda settings: {"enum": [kind.value for kind in ScopeType]},
    "scope_id": lambda settings: {"pattern": SCOPE_ID_PATTERN.pattern},
    "name": lambda settings: {"pattern": settings.name_pattern},
    "backend": lambda settings: {"enum": sorted(settings.backends)},
}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "The ETag last read: the write fails with 412 if the secret moved on.",
}
BODY_LOCATIONS = frozenset({"json", "form", "files", "multipart"})
SENTENCE_END = re.compile(r"(?<=\.)\s")


class QueryParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400  # what errors.handle_http_exception answers anyway

    def load_querystring(self, req: Request, schema: Schema) -> Mapping[str, Any]:
        if not req.query_string:
            return {}
        return super().load_querystring(req, schema)  # type: ignore[no-any-return]

    def _raw_load_json(self, req: Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise  # webargs' own answer: missing for an empty body, else "Invalid JSON body."
        except (RecursionError, ValueError) as error:
            unparsable(error)


def unparsable(error: Exception) -> NoReturn:
    reason = "nested too deep" if isinstance(error, RecursionError) else "a number too long"
    abort(400, exc=error, messages={"json": [f"Invalid JSON body: {reason}."]})


def raises(*error_classes: type[ServiceError]) -> Callable[[View], View]:
    """The core errors a view's use case may raise besides those its shape implies
    (`implied_errors`): `Forbidden` where the caller may see the resource but not act on it,
    `NotFound` for a resource named in the body, `Conflict`, `Expired`... Their statuses are
    documented from the one error map (`entrypoints.http.errors.STATUS_BY_ERROR`) that answers
    them at run time. The view is annotated, not wrapped: a wrapper would cost every request a
    call."""

    def annotate(view: View) -> View:
        declared = view.__dict__.setdefault("_apidoc", {}).setdefault("raises", [])
        declared.extend(error for error in error_classes if error not in declared)
        return view

    return annotate


def operation_id(name: str) -> Callable[[View], View]:
    """The view's `operationId`, where the derived one (`derived_operation_id`) reads badly."""

    def annotate(view: View) -> View:
        view.__dict__.setdefault("_apidoc", {})["operation_id"] = name
        return view

    return annotate


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's blueprint; `public=True` for one whose operations take no token."""

    ARGUMENTS_PARSER = QueryParser()
    _docs: dict[str, dict[str, Any]]  # flask-smorest's: each endpoint's documentation

    def __init__(self, *args: Any, public: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.public = public

    def register_views_in_doc(
        self, api: Any, app: Flask, spec: Any, *, name: str, parameters: Any
    ) -> None:
        """flask-smorest documents `self._docs`: here, a copy completed for this app."""
        stored = self._docs
        self._docs = {
            endpoint: self.document(api, app, name, endpoint, info)
            for endpoint, info in stored.items()
        }
        try:
            super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)
        finally:
            self._docs = stored

    def document(
        self, api: Any, app: Flask, name: str, endpoint: str, info: dict[str, Any]
    ) -> dict[str, Any]:
        """One route's documentation, completed: its path parameters, each method's operation."""
        info = deepcopy(info)
        settings: Settings = app.extensions["container"].settings()
        rule = next(app.url_map.iter_rules(f"{name}.{endpoint}"))
        routed = api.flask_plugin.rule_to_params(rule)
        texts = [parameter for parameter in routed if parameter["name"] in PATH_PARAMETERS]
        info["parameters"] = [
            *(info["parameters"] or []),
            *(
                {**text, "schema": text["schema"] | PATH_PARAMETERS[text["name"]](settings)}
                for text in texts
            ),
        ]
        for method, operation in info.items():
            if method != "parameters":
                derived = derived_operation_id(endpoint, method)
                self.complete(operation, derived, has_path=bool(routed), has_text=bool(texts))
        return info

    def complete(
        self, operation: dict[str, Any], derived_id: str, *, has_path: bool, has_text: bool
    ) -> None:
        """An operation's id, summary and description, security and error responses."""
        manual = operation.setdefault("manual_doc", {})
        manual.setdefault("operationId", operation.get("operation_id") or derived_id)
        operation["docstring"] = described(operation["docstring"])
        if self.public:
            manual["security"] = []
        statuses = implied_errors(operation, self.public, has_path, has_text)
        statuses |= {status_of_class(error) for error in operation.get("raises", ())}
        responses = operation.setdefault("response", {}).setdefault("responses", {})
        for status in sorted(statuses):
            responses.setdefault(status, [documented(status)])  # a view's own answer stays


def implied_errors(
    operation: dict[str, Any], public: bool, has_path: bool, has_text: bool
) -> set[int]:
    """What the service answers by the operation's shape alone: 400 for arguments, text path
    parameters or `If-Match` (each is checked); 401, 429 and 503 for a caller with a token
    (the token is checked, failures are limited, the database answers each request); 404 for
    path parameters (nothing of that name); 412 for `If-Match`; 413 for a body. Each status
    is that of the error behind it (429: the HTTP layer's own)."""
    arguments = operation.get("arguments", {}).get("parameters", [])
    headers = operation.get("manual_doc", {}).get("parameters", [])
    if_match = any(header.get("name") == IF_MATCH["name"] for header in headers)
    implied: set[type[ServiceError]] = set()
    statuses = set()
    if arguments or has_text or if_match:
        implied.add(InvalidInput)
    if not public:
        implied |= {Unauthenticated, DatabaseUnavailable}
        statuses.add(TooManyFailedAuthentications.code)
    if has_path:
        implied.add(NotFound)
    if if_match:
        implied.add(PreconditionFailed)
    if any(argument["in"] in BODY_LOCATIONS for argument in arguments):
        implied.add(ValueTooLarge)
    return statuses | {status_of_class(error) for error in implied}


def derived_operation_id(endpoint: str, method: str) -> str:
    """`get_secret` for the `get` of `SecretItem`, `get_secret_value` for `SecretValueView`."""
    view = re.sub(r"(Item|View)$", "", endpoint)
    return f"{method}_{re.sub(r'(?<!^)(?=[A-Z])', '_', view).lower()}"


def described(docstring: dict[str, str]) -> dict[str, str]:
    """A docstring's summary (its first sentence) and description (the whole of it, on one
    line per paragraph)."""
    whole = "\n\n".join(docstring.get(part, "") for part in ("summary", "description"))
    paragraphs = (" ".join(paragraph.split()) for paragraph in whole.split("\n\n"))
    text = "\n\n".join(paragraph for paragraph in paragraphs if paragraph)
    if not text:
        return {}
    return {"summary": SENTENCE_END.split(text, maxsplit=1)[0], "description": text}
