"""Per-request helpers for views: the container, the caller's If-Match, the response ETag."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from flask import current_app, g, request

from core.errors import InvalidInput

if TYPE_CHECKING:
    from entrypoints.container import Container

ETAG = re.compile(r'^(?:W/)?"rev-(\d{1,18})"$')


def current_container() -> Container:
    return cast("Container", current_app.extensions["container"])


def set_etag(revision: int) -> None:
    g.etag = f'"rev-{revision}"'


def expected_revision() -> int | None:
    """The revision named by `If-Match`, or None when the caller sent none (or `*`)."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    match = ETAG.fullmatch(header)
    if match is None:
        raise InvalidInput(
            'If-Match must be an ETag returned by this API, such as "rev-3"',
            details={"header": "If-Match"},
        )
    return int(match.group(1))
