"""The headers every answer carries, Flask's and the hot path's alike: defined once, here."""

from __future__ import annotations

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),  # an answer may carry a value: no cache may keep it
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)

# An HTML answer (the docs page) runs this server's own scripts and styles and nothing else;
# `data:` images are Swagger UI's icons, inlined in its stylesheet.
HTML_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)

# The web console's pages (entrypoints/ui): its own stylesheet and script only, no inline ones,
# forms posting to itself only.
UI_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
