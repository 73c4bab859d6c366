"""`X-Forwarded-For`, `-Proto`, `-Host` and `-Port` believed from the configured proxies only
(`trusted_proxies`).

werkzeug's `ProxyFix` believes whoever sends the headers; here it is applied only when the peer
(`REMOTE_ADDR`) is one of the configured addresses or networks, and takes the last address the
proxy appended: the client it saw. From any other peer the headers are removed, so nothing
downstream can read them. The failed-authentication limit, the audit trail's source address and
the request's scheme then rest on what the proxy saw, and never on what a client claims.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from entrypoints.http.hot_reads import StartResponse, WsgiApp

FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_FORWARDED",
)


def behind_proxies(app: WsgiApp, trusted: Sequence[str]) -> WsgiApp:
    """`app`, believing the forwarding headers of the `trusted` proxies (`app` itself: none)."""
    return TrustedProxies(app, trusted) if trusted else app


class TrustedProxies:
    """WSGI middleware: `ProxyFix` (one hop) for requests from `trusted` peers only."""

    def __init__(self, app: WsgiApp, trusted: Sequence[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(item, strict=False) for item in trusted)
        self._direct = app
        self._forwarded = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.trusts(environ.get("REMOTE_ADDR")):
            return self._forwarded(environ, start_response)
        for header in FORWARDED:
            environ.pop(header, None)
        return self._direct(environ, start_response)

    def trusts(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def __getattr__(self, name: str) -> Any:
        """The wrapped app's attributes (`HotReads.served`)."""
        return getattr(self._direct, name)

    def __repr__(self) -> str:
        return f"TrustedProxies({', '.join(str(network) for network in self._networks)})"
