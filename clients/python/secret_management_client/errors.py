"""Typed errors. Each carries the HTTP status, the server's error code and the request id;
messages come from the server's error shape (which never holds a value) or from the client."""

from __future__ import annotations


class SecretManagementError(Exception):
    """Any failure of the client: `status` (None without an answer), `code` (the server's
    error code, or the client's), `request_id` (the server's `X-Request-Id`, when answered)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"


class InvalidReference(SecretManagementError, ValueError):
    """A reference that does not follow `secret://{scope_type}/{scope_id}/{NAME}[?env=…]`."""


class Unauthenticated(SecretManagementError):
    """401: no token, or one the server does not accept."""


class Forbidden(SecretManagementError):
    """403: the token may see the secret but not read it."""


class NotFound(SecretManagementError):
    """404: no such secret, or none the token may see."""


class Gone(SecretManagementError):
    """410: the value has expired (or the version is gone)."""


Expired = Gone


class Unavailable(SecretManagementError):
    """The service cannot answer: 502/503/504, a timeout or a connection error."""


BY_STATUS: dict[int, type[SecretManagementError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}
