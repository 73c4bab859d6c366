"""The one error hierarchy of the service. Messages never carry a secret value.

Each error has a stable machine `code`; the web layer maps the class to an HTTP status in one
place. `details` holds structured, value-free context (a field name, a limit, a time).
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(ServiceError):
    code = "validation_error"


class ValueTooLarge(InvalidInput):
    code = "value_too_large"


class InvalidSecretValue(InvalidInput):
    """A value that fails its type's checks: `details` name the field and the reason."""

    code = "invalid_secret_value"


class InvalidImport(InvalidInput):
    """A file to import with entries that cannot be imported: `details` list them by line."""

    code = "invalid_import"


class Unauthenticated(ServiceError):
    code = "unauthenticated"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class PreconditionFailed(ServiceError):
    code = "precondition_failed"


class Expired(ServiceError):
    code = "secret_expired"


class NotYetValid(Conflict):
    code = "secret_not_yet_valid"


class VersionUnavailable(Conflict):
    """The version exists but its value may not be served (disabled or destroyed)."""

    code = "version_unavailable"


class ValueIntegrityError(ServiceError):
    """A stored value failed authentication or its checksum: tampering or a misplaced blob."""

    code = "value_integrity_error"


class ConfigurationError(ServiceError):
    code = "configuration_error"


class BackendUnavailable(ServiceError):
    code = "backend_unavailable"

    def __init__(self, backend: str, reason: str = "") -> None:
        message = f"storage backend '{backend}' is unavailable"
        if reason:
            message = f"{message}: {reason}"
        super().__init__(message, details={"backend": backend})
        self.backend = backend


class DatabaseUnavailable(ServiceError):
    """The service's database refused or dropped the connection (503): try again. The pool
    renews its connections."""

    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__("the database is unavailable; try again")


class TooManyStreams(ServiceError):
    """This process holds as many open change streams as it is configured to (503)."""

    code = "too_many_streams"


class AuditUnavailable(ServiceError):
    """The audit trail cannot be written: nothing that needs an audit record may proceed."""

    code = "audit_unavailable"


class AuditEventRefused(AuditUnavailable):
    """The store refused an audit event's data (too long, out of range, not encodable): the
    trail itself is up, so the events written with it are tried again without it."""


class BackendAuthFailed(ServiceError):
    code = "backend_auth_failed"

    def __init__(self, backend: str) -> None:
        super().__init__(
            f"storage backend '{backend}' refused the service's credentials",
            details={"backend": backend},
        )
        self.backend = backend


class RotationFailed(ServiceError):
    """A rotation did not complete: the owning system refused the new value, or the secret
    changed under it. The current value stays in place; `details["reason"]` says why."""

    code = "rotation_failed"


class DeliveryFailed(ServiceError):
    """An event could not be delivered to a subscriber (it is retried later)."""

    code = "delivery_failed"


class LeaseLost(Conflict):
    """A job's lease ran out and another process took the job: this one must stop."""

    code = "lease_lost"
