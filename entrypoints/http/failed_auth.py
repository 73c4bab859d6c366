"""Failed authentications, limited per source address.

Under the limit (`[auth] failures_per_minute`), a bad token is answered 401 and audited as ever.
Over it, the source's bad tokens are answered 429 with `Retry-After`, and recorded together: one
`auth.rate_limited` event per source and window that counts them, instead of one audit event (a
database write) each. Only failures reach this class; a request with a good token never does.

The source is the peer address (`REMOTE_ADDR`): behind a proxy every caller shares the proxy's
(`X-Forwarded-For` is not trusted). An IPv6 source counts by its /64 network, which one host
usually holds whole. Each worker process counts on its own (limits' in-memory moving window).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from typing import NoReturn

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from core.audit import AuditTrail
from core.domain.audit import AuditAction, RequestInfo
from core.domain.callers import Caller
from core.domain.errors import Unauthenticated
from entrypoints.http.context import ANONYMOUS

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class TooManyFailedAuthentications(TooManyRequests):
    """429, with the seconds until the source's next attempt may be checked."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed authentications from this address; try again later")
        self.data = {"headers": {"Retry-After": str(retry_after)}}  # as the error handler reads


class FailedAuthentications:
    """Counts failed authentications by source and decides how each is answered and audited."""

    def __init__(
        self,
        per_window: int,
        trail: AuditTrail,
        window_seconds: int = WINDOW_SECONDS,
    ) -> None:
        """`per_window` failures a source may make in `window_seconds` (0: no limit), audited
        in `trail`."""
        self._limit = RateLimitItemPerSecond(per_window, window_seconds) if per_window else None
        self._window = window_seconds
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._trail = trail
        self._lock = threading.Lock()
        self._refused: dict[str, tuple[str | None, int]] = {}  # key -> (address, count)

    def refuse(self, error: Unauthenticated, request: RequestInfo, resource: str) -> NoReturn:
        """Record the failed authentication `error` of the request `request` (counted against
        its source address), and raise what the request is answered: `error` itself under the
        limit, 429 over it."""
        source = request.source_ip
        key = source_key(source)
        if self._limit is None or self._limiter.hit(self._limit, key):
            caller = Caller.of(ANONYMOUS, request)
            self._trail.refused(caller, AuditAction.AUTH_AUTHENTICATE, resource, error.code)
            raise error
        with self._lock:
            address, count = self._refused.get(key, (source, 0))
            if count == 0:  # the window's first: its aggregate event is written as it ends
                log.warning(
                    "failed authentications from %s over the limit (%d in %d s): answered 429",
                    key,
                    self._limit.amount,
                    self._window,
                )
                report = threading.Timer(self._window, self._report, args=(key,))
                report.daemon = True
                report.start()
            self._refused[key] = (address, count + 1)
        reset, _ = self._limiter.get_window_stats(self._limit, key)
        raise TooManyFailedAuthentications(max(1, math.ceil(reset - time.time())))

    def _report(self, key: str) -> None:
        with self._lock:
            address, count = self._refused.pop(key)
        assert self._limit is not None
        reason = (
            f"{count} failed authentications answered 429 in {self._window} s, over the limit "
            f"of {self._limit.amount}"
        )
        caller = Caller.of(ANONYMOUS, RequestInfo(source_ip=address))
        self._trail.refused(caller, AuditAction.AUTH_RATE_LIMITED, f"source:{key}", reason)

    def __repr__(self) -> str:
        return f"FailedAuthentications(limit={self._limit})"


def source_key(source: str | None) -> str:
    """What failures count against: the address, or its /64 network for IPv6."""
    try:
        address = ipaddress.ip_address(source or "")
    except ValueError:
        return source or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)
