"""The blueprint class of every API module: flask-smorest's, with a webargs parser that

- loads the query arguments of a request without a query string from an empty mapping. webargs
  would look each declared argument up in the empty query, and werkzeug raises (and webargs
  catches) an exception for every one that is missing: on the hot read path that was a cost per
  request. The arguments, their validation and their documentation are the same;
- answers 400 for a JSON body that Python's parser gives up on with something else than a
  syntax error: nested too deep (`RecursionError`), or an integer of more than 4,300 digits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import flask_smorest
from flask import Request
from marshmallow import Schema
from webargs.flaskparser import FlaskParser, abort


class QueryParser(FlaskParser):
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


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = QueryParser()
