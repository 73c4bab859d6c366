"""What every contract checks the same way: a value unique to one test, and that it shows up in
no error, repr or log record."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable


def canary() -> bytes:
    """A value unique to one test, easy to look for in messages and stored bytes."""
    return f"contract-canary-{uuid.uuid4().hex}".encode()


def assert_not_leaked(error: BaseException, value: bytes | str) -> None:
    """Neither the error nor any error it was raised from shows the value."""
    text = value.decode() if isinstance(value, bytes) else value
    link: BaseException | None = error
    while link is not None:
        assert text not in str(link), f"{type(link).__name__} shows the value"
        assert text not in repr(link.args), f"{type(link).__name__} carries the value"
        details = getattr(link, "details", None)
        assert text not in repr(details), f"{type(link).__name__}'s details show the value"
        link = link.__cause__ or link.__context__


def assert_not_logged(records: Iterable[logging.LogRecord], value: bytes | str) -> None:
    """No log record shows the value, in its message or its extra fields."""
    text = value.decode() if isinstance(value, bytes) else value
    for record in records:
        assert text not in record.getMessage(), record.name
        assert text not in repr(record.__dict__), record.name
