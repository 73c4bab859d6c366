"""The JSON-lines log format (`log_format = "json"`, entrypoints/logs.py): one object per line
whatever a message quotes, the request line's fields as fields, granian's lines included."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from core.domain.values import Principal
from entrypoints.http.context import log_access
from entrypoints.logs import (
    OneLineFormatter,
    configure_logging,
    current_request_id,
    granian_log_config,
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The service's root handler, configured for JSON and writing to a string."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    configure_logging("INFO", "json")
    [handler] = [h for h in root.handlers if getattr(h, "secret_management", False)]
    stream = io.StringIO()
    original = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        handler.setStream(original)  # type: ignore[attr-defined]
        configure_logging("INFO")  # back to plain for the tests that follow
        for added in [h for h in root.handlers if h not in before]:
            root.removeHandler(added)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.isascii() and text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_record_is_one_json_object_on_one_ascii_line(captured: io.StringIO) -> None:
    logging.getLogger("probe").warning("path %s", "/x\n\ud800 café")
    [record] = lines(captured)
    assert record["message"] == "path /x\n\ud800 café"
    assert (record["level"], record["logger"], record["request_id"]) == ("WARNING", "probe", "-")
    assert str(record["time"]).endswith("+00:00")


def test_the_request_line_carries_its_fields(captured: io.StringIO) -> None:
    token = current_request_id.set("req-42")
    try:
        log_access(
            "GET", "/api/v1/secrets/{secret_id}/value", 200, 0.00234, Principal("user:a", "user")
        )
    finally:
        current_request_id.reset(token)
    [record] = lines(captured)
    assert record["logger"] == "secret_management.access" and record["level"] == "INFO"
    assert {key: record[key] for key in ("method", "route", "status", "principal")} == {
        "method": "GET",
        "route": "/api/v1/secrets/{secret_id}/value",
        "status": 200,
        "principal": "user:a",
    }
    assert record["duration_ms"] == 2.3 and record["request_id"] == "req-42"


def test_an_exception_stays_in_its_record(captured: io.StringIO) -> None:
    try:
        raise LookupError("no such thing")
    except LookupError:
        logging.getLogger("probe").exception("failed")
    [record] = lines(captured)
    assert "LookupError: no such thing" in str(record["exc_info"])


def test_granian_lines_come_in_the_service_format(captured: io.StringIO) -> None:
    logging.config.dictConfig(
        {"version": 1, "disable_existing_loggers": False, **granian_log_config()}
    )
    logging.getLogger("_granian").info("Listening at: http://127.0.0.1:8080")
    [record] = lines(captured)
    assert record["logger"] == "_granian" and record["message"].startswith("Listening")


def test_plain_is_the_default() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging("INFO")
        [handler] = [h for h in root.handlers if getattr(h, "secret_management", False)]
        assert isinstance(handler.formatter, OneLineFormatter)
    finally:
        for added in [h for h in root.handlers if h not in before]:
            root.removeHandler(added)
