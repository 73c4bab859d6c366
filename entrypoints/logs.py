"""Logging for every entrypoint: one line per record, with the request id when there is one,
as plain text (development) or as one JSON object per line (`log_format = "json"`, for a log
pipeline), granian's own lines included (`granian_log_config`).

Nothing logs request bodies or values; values travel only inside `SecretValue`, whose repr is
redacted, so even a careless `%r` cannot print one.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any

from flask import g, has_app_context
from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# The JSON object's fields, besides those a record carries in `extra` (the request line's).
JSON_FIELDS = "%(levelname)s %(name)s %(request_id)s %(message)s"
JSON_NAMES = {"levelname": "level", "name": "logger"}


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


def json_formatter() -> logging.Formatter:
    """One JSON object per line (python-json-logger): `time`, `level`, `logger`, `request_id`,
    `message`, and the record's `extra` fields. JSON escapes control characters, and every
    non-ASCII character (a lone surrogate too), so a record stays one line of ASCII."""
    return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp="time")


def formatter(log_format: str) -> logging.Formatter:
    return json_formatter() if log_format == "json" else OneLineFormatter(FORMAT)


def configure_logging(level: str, log_format: str = "plain") -> None:
    """Install one stderr handler on the root logger, or set the format of the one installed."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if getattr(handler, "secret_management", False):
            handler.setFormatter(formatter(log_format))
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.secret_management = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)


def granian_log_config() -> dict[str, Any]:
    """granian's `log_dictconfig`: its loggers hand their records to the root logger's handler
    (`configure_logging`), so its lines come in the service's format."""
    propagate = {"handlers": [], "propagate": True}
    return {
        "formatters": {},
        "handlers": {},
        "loggers": {"_granian": dict(propagate), "granian.access": dict(propagate)},
    }
