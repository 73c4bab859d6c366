"""The blueprint class of every API module: flask-smorest's, with a webargs parser that loads
the query arguments of a request without a query string from an empty mapping. webargs would
look each declared argument up in the empty query, and werkzeug raises (and webargs catches)
an exception for every one that is missing: on the hot read path that was a cost per request.
The arguments, their validation and their documentation are the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flask_smorest
from flask import Request
from marshmallow import Schema
from webargs.flaskparser import FlaskParser


class QueryParser(FlaskParser):
    def load_querystring(self, req: Request, schema: Schema) -> Mapping[str, Any]:
        if not req.query_string:
            return {}
        return super().load_querystring(req, schema)  # type: ignore[no-any-return]


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = QueryParser()
