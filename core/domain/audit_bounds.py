"""What an audit event may hold: each field cleaned and bounded to what every store keeps.

An event carries what a request brought (its path, User-Agent, a body's fields, a number from
the query string), so a field may hold anything. A store refuses some of it (PostgreSQL a NUL,
either database a lone surrogate, a text longer than its column, a version past its integer
column), and a refused event would fail the events committed with it. So before an event is
queued, its texts have control characters escaped visibly and lone surrogates replaced, and are
truncated with a marker; a number out of its column's range is left out and noted in the
details; the details are bounded in depth and size. `AuditEvent.bounded` applies these rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, cast

# The columns of `secret_audit_events` (adapters/db/tables.py; a test compares them).
TEXT_LIMITS: Mapping[str, int] = {
    "request_id": 64,
    "actor": 255,
    "actor_type": 32,
    "source_ip": 64,
    "user_agent": 512,
    "action": 64,
    "resource": 512,
    "scope": 255,
    "scope_path": 255,
    "outcome": 16,
    "reason": 255,
}
VERSION_MIN, VERSION_MAX = -(2**31), 2**31 - 1  # a 32-bit INTEGER column
# A JSON number the stores and the canonical JSON keep exactly.
DETAIL_MIN, DETAIL_MAX = -(2**63), 2**63 - 1
DETAILS_DEPTH = 8  # containers nested in the details object
DETAILS_ITEMS = 1000  # values in all, nested ones included
DETAILS_TEXT = 1024  # characters of one text value
DETAILS_KEY = 128  # characters of one key
TRUNCATED = "…"  # ends a truncated text; stands for what was left out of the details
# Details' key for the numbers left out of an event's fields, as asked (text).
OUT_OF_RANGE = "out_of_range"

# C0 and C1 control characters (NUL above all) and lone surrogates: no store keeps them all,
# and a control character misleads whoever reads the trail in a terminal or a spreadsheet.
UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# In the details, texts are JSON strings (a newline stays escaped wherever they are shown):
# only what no store keeps is replaced.
UNSTORABLE_IN_JSON = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\ufffd" if char >= "\ud800" else f"\\x{ord(char):02x}"


def bounded_text(value: object, limit: int, unstorable: re.Pattern[str] = UNSTORABLE) -> str:
    """`value` as text every store keeps: control characters (`unstorable`) escaped
    (`\\x00`), lone surrogates replaced (U+FFFD), at most `limit` characters (the last one `…`
    if cut). A number is written out; a value of any other type is named by its type, never
    written out (it could be anything, a secret included)."""
    text = _text_of(value)
    if not text.isprintable():  # fast: nearly every text is
        text = unstorable.sub(_escape, text)
    if len(text) > limit:
        text = text[: limit - 1] + TRUNCATED
    return text


def _text_of(value: object) -> str:
    if isinstance(value, str):
        return str.__str__(value)  # a subclass's text as it is (an enum's value, say)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value)
    return f"<{type(value).__name__}>"


def is_bounded_text(value: object, limit: int) -> bool:
    """Whether `bounded_text` would return `value` itself (the common case, checked fast)."""
    return type(value) is str and len(value) <= limit and value.isprintable()


def number_text(value: object) -> str:
    """A number that was left out, as text for the details (a huge one by its size only)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, int | float):
        return str(int.__repr__(value) if isinstance(value, int) else float.__repr__(value))
    return bounded_text(value, 64)


def bounded_details(details: object) -> dict[str, Any]:
    """`details` as a JSON object the stores keep (`details` itself when it already is)."""
    if type(details) is dict:
        return _object(details, 1, [DETAILS_ITEMS])
    if details is None:
        return {}
    return {"details": _value(details, 1, [DETAILS_ITEMS])}


def _value(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if value is None or type(value) is bool:
        return value
    if isinstance(value, int):
        return int(value) if DETAIL_MIN <= value <= DETAIL_MAX else number_text(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None  # JSON has no NaN or infinity
    if isinstance(value, str):
        if is_bounded_text(value, DETAILS_TEXT):
            return value
        return bounded_text(value, DETAILS_TEXT, UNSTORABLE_IN_JSON)
    if isinstance(value, dict | list | tuple):
        if depth >= DETAILS_DEPTH:
            return TRUNCATED
        if isinstance(value, dict):
            return _object(value, depth + 1, budget)
        return _array(value, depth + 1, budget)
    return bounded_text(value, DETAILS_TEXT)


def _object(value: dict[Any, Any], depth: int, budget: list[int]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    changed = type(value) is not dict
    for index, (key, item) in enumerate(value.items()):
        if budget[0] <= 0 and len(value) - index > 1:  # (one left: kept, so this is idempotent)
            cleaned[TRUNCATED] = f"{len(value) - index} more"
            return cleaned
        if not is_bounded_text(key, DETAILS_KEY):
            key, changed = _key(key), True
        new = _value(item, depth, budget)
        changed = changed or new is not item
        cleaned[key] = new
    return cleaned if changed else cast("dict[str, Any]", value)


def _key(key: object) -> str:
    if isinstance(key, int | float) and not isinstance(key, bool):
        return number_text(key)  # as JSON writes a number key
    return bounded_text(key, DETAILS_KEY, UNSTORABLE_IN_JSON)


def _array(value: list[Any] | tuple[Any, ...], depth: int, budget: list[int]) -> list[Any]:
    cleaned: list[Any] = []
    changed = type(value) is not list
    for index, item in enumerate(value):
        if budget[0] <= 0 and len(value) - index > 1:
            cleaned.append(f"{TRUNCATED} {len(value) - index} more")
            return cleaned
        new = _value(item, depth, budget)
        changed = changed or new is not item
        cleaned.append(new)
    return cleaned if changed else cast("list[Any]", value)
