"""Logging for every entrypoint: one line per record, with the request id when there is one.

Nothing logs request bodies or values; values travel only inside `SecretValue`, whose repr is
redacted, so even a careless `%r` cannot print one.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from flask import g, has_app_context

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


# The request id of a request answered outside Flask's dispatch (entrypoints/http/hot_reads.py).
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


# C0 and C1 control characters but tab: a caller's text inside a message must not start a new
# line (a forged record) or move the terminal's cursor.
CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escape(found: re.Match[str]) -> str:
    return f"\\x{ord(found.group()):02x}"


class OneLineFormatter(logging.Formatter):
    """One line per record whatever a message quotes: control characters escaped (`\\x0a`), and
    unpaired surrogates (text no UTF-8 stream can write) as `\\udc80`, in the traceback too."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return CONTROLS.sub(_escape, super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if text.isascii():
            return text
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
