"""The opaque cursor of keyset paging (`after` in, `next` out): a position in a list of one
scope's secrets, as URL-safe base64 (unpadded) of the JSON array [name, environment].

Opaque to callers, who pass `next` back as `after` unchanged. It names a place in the order and
grants nothing: the page after it is filtered by the caller's permissions as any other page,
so a cursor made up, or taken from another scope's list, reveals nothing the caller cannot list.
Decoding is strict: anything but the exact encoding of two strings is rejected.
"""

from __future__ import annotations

import base64
import binascii
import json

from core.domain.secrets import ListPosition

MAX_CURSOR_LENGTH = 4096


def encode_cursor(position: ListPosition) -> str:
    text = json.dumps([position.name, position.environment], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> ListPosition:
    """The position `cursor` encodes; ValueError (saying nothing of its content) if it is not
    exactly a cursor this module makes."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("not a cursor")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        decoded = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or not all(isinstance(part, str) for part in decoded)
        or not decoded[0]
    ):
        raise ValueError("not a cursor")
    position = ListPosition(decoded[0], decoded[1])
    if encode_cursor(position) != cursor:  # one spelling per position
        raise ValueError("not a cursor")
    return position
