"""Log lines stay one line of UTF-8 whatever a message quotes (`entrypoints/logs.py`): a lone
surrogate from a request (issue #14) used to reach the log as it was, and a newline in a
quoted path could forge a record."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from entrypoints.logs import FORMAT, OneLineFormatter, RequestIdFilter, configure_logging


def formatted(message: str, *args: object, exc_info: bool = False) -> str:
    record = logging.LogRecord("test", logging.WARNING, __file__, 1, message, args, None)
    if exc_info:
        try:
            raise LookupError(f"no secret {args[0]}")
        except LookupError:
            record.exc_info = sys.exc_info()
    RequestIdFilter().filter(record)
    return OneLineFormatter(FORMAT).format(record)


@pytest.mark.parametrize(
    ("quoted", "written"),
    [
        ("scope:project/\ud800", "scope:project/\\ud800"),
        ("a\nforged INFO line", "a\\x0aforged INFO line"),
        ("a\r\x1b[2Jb", "a\\x0d\\x1b[2Jb"),
        ("\x00\x85", "\\x00\\x85"),
        ("café\ttab", "café\ttab"),
    ],
)
def test_a_quoted_text_is_escaped_into_one_line_of_utf_8(quoted: str, written: str) -> None:
    line = formatted("could not record audit event %s", quoted)
    assert line.endswith(f"could not record audit event {written}")
    assert "\n" not in line
    line.encode("utf-8")  # a strict UTF-8 stream can write it


def test_a_traceback_keeps_its_lines_but_no_lone_surrogate() -> None:
    text = formatted("unhandled error %s", "x\ud800", exc_info=True)
    assert "Traceback (most recent call last)" in text and "\n" in text
    assert "no secret x\\ud800" in text
    text.encode("utf-8")


def test_the_service_handler_writes_through_it() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        configure_logging("INFO")
        [handler] = [h for h in root.handlers if getattr(h, "secret_management", False)]
        assert isinstance(handler.formatter, OneLineFormatter)
        stream = io.StringIO()
        original = handler.setStream(stream)  # type: ignore[attr-defined]
        try:
            logging.getLogger("probe").warning("path %s", "/x\n\ud800")
        finally:
            handler.setStream(original)  # type: ignore[attr-defined]
        assert stream.getvalue().endswith("path /x\\x0a\\ud800\n")
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
