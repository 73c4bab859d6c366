"""A Python client for consumer services of the secret management service."""

from secret_management_client.client import Client, Stats
from secret_management_client.errors import (
    Expired,
    Forbidden,
    Gone,
    InvalidReference,
    NotFound,
    SecretManagementError,
    Unauthenticated,
    Unavailable,
)
from secret_management_client.reference import Reference, parse_reference
from secret_management_client.value import SecretValue

__all__ = [
    "Client",
    "Expired",
    "Forbidden",
    "Gone",
    "InvalidReference",
    "NotFound",
    "Reference",
    "SecretManagementError",
    "SecretValue",
    "Stats",
    "Unauthenticated",
    "Unavailable",
    "parse_reference",
]
