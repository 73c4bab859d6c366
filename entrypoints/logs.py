"""Logging for every entrypoint: one line per record, with the request id when there is one.

Nothing logs request bodies or values; values travel only inside `SecretValue`, whose repr is
redacted, so even a careless `%r` cannot print one.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from flask import g, has_app_context

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


# The request id of a request answered outside Flask's dispatch (entrypoints/http/hot_reads.py).
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is None:
            request_id = g.get("request_id", "-") if has_app_context() else "-"
        record.request_id = request_id
        return True


def configure_logging(level: str) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(handler, "secret_management", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.secret_management = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
