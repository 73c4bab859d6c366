"""CORS for a platform's front end on another origin (`[cors] allowed_origins`), by flask-cors.

Without configured origins nothing is added: no CORS header on any answer. With them, the API's
answers to those origins carry `Access-Control-Allow-Origin` (errors too), and a preflight
(`OPTIONS` with `Access-Control-Request-Method`) is answered without a token, as browsers send
it: the methods and the request headers a call may use, for `max_age_seconds`. Bearer tokens,
not cookies: credentials are not allowed. A request without `Origin` gets no CORS header, so the
hot path (which leaves requests with `Origin` to Flask) answers exactly as Flask would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_cors import CORS

from entrypoints.config import Settings

# What a browser's script may send, and read of an answer, besides the CORS-safelisted ones.
REQUEST_HEADERS = ("Authorization", "Content-Type", "If-Match", "X-Request-Id")
EXPOSED_HEADERS = ("ETag", "Location", "Retry-After", "X-Request-Id", "Content-Disposition")


def allow_origins(app: Flask, settings: Settings) -> tuple[Callable[..., Any], ...]:
    """Set CORS up for the configured origins; the `after_request` hooks it added."""
    origins = settings.cors["allowed_origins"]
    if not origins:
        return ()
    before = list(app.after_request_funcs.get(None, []))
    CORS(
        app,
        resources={r"/api/*": {}},
        origins=origins,
        allow_headers=list(REQUEST_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        supports_credentials=False,
        max_age=settings.cors["max_age_seconds"],
        always_send=False,
        vary_header=True,
    )
    return tuple(app.after_request_funcs[None][len(before) :])
