"""The rules a secret must follow before anything is stored, and the keyed value checksum."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from core.domain.errors import InvalidInput, ValueTooLarge
from core.domain.secrets import CONSUMERS
from core.domain.values import GLOBAL_SCOPE_ID, ScopeRef, ScopeType, SecretValue

DEFAULT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,254}$"
ENVIRONMENT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SCOPE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
TAG_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
MAX_TAGS = 50
MAX_TAG_VALUE = 256
MAX_DESCRIPTION = 1024


@dataclass(frozen=True)
class SecretPolicy:
    """Service-wide limits, set from configuration."""

    name_pattern: str = DEFAULT_NAME_PATTERN
    max_value_bytes: int = 64 * 1024
    retention_days: int = 30
    max_versions_limit: int = 1000

    def __post_init__(self) -> None:
        if not 7 <= self.retention_days <= 90:
            raise InvalidInput("retention_days must be between 7 and 90")

    def check_name(self, name: str) -> None:
        if not re.fullmatch(self.name_pattern, name):
            raise InvalidInput(
                f"invalid secret name: it must match {self.name_pattern}",
                details={"field": "name"},
            )

    def check_value(self, value: SecretValue, backend_limit: int, backend: str) -> None:
        limit = min(self.max_value_bytes, backend_limit)
        if len(value) > limit:
            raise ValueTooLarge(
                f"value is {len(value)} bytes; the limit is {limit} bytes"
                + (f" (backend '{backend}')" if backend_limit < self.max_value_bytes else ""),
                details={"field": "value", "limit": limit, "size": len(value)},
            )

    def check_metadata(
        self,
        *,
        environment: str | None = None,
        consumer: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        max_versions: int | None = None,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        if environment is not None and not ENVIRONMENT_PATTERN.fullmatch(environment):
            raise InvalidInput(
                f"invalid environment: it must match {ENVIRONMENT_PATTERN.pattern}",
                details={"field": "environment"},
            )
        if consumer is not None and consumer not in CONSUMERS:
            raise InvalidInput(
                f"invalid consumer: one of {', '.join(CONSUMERS)}", details={"field": "consumer"}
            )
        if tags is not None:
            check_tags(tags)
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise InvalidInput(
                f"description is longer than {MAX_DESCRIPTION} characters",
                details={"field": "description"},
            )
        if max_versions is not None and not 1 <= max_versions <= self.max_versions_limit:
            raise InvalidInput(
                f"max_versions must be between 1 and {self.max_versions_limit}",
                details={"field": "max_versions"},
            )
        for name, moment in (("not_before", not_before), ("expires_at", expires_at)):
            # A naive time cannot be compared with the clock's and is refused by the tables.
            if moment is not None and moment.utcoffset() is None:
                raise InvalidInput(f"{name} needs a time zone", details={"field": name})
        if not_before and expires_at and not_before >= expires_at:
            raise InvalidInput(
                "not_before must be earlier than expires_at", details={"field": "not_before"}
            )


def check_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", details={"field": "tags"})
    for key, tag_value in tags.items():
        if not TAG_KEY_PATTERN.fullmatch(key):
            raise InvalidInput(
                f"invalid tag key: it must match {TAG_KEY_PATTERN.pattern}",
                details={"field": "tags"},
            )
        if len(tag_value) > MAX_TAG_VALUE:
            raise InvalidInput(
                f"tag values are at most {MAX_TAG_VALUE} characters", details={"field": "tags"}
            )


def check_scope(scope: ScopeRef) -> None:
    """The global scope is the one root; every other scope is named by a valid id."""
    if scope.type is ScopeType.GLOBAL:
        if scope.id != GLOBAL_SCOPE_ID:
            raise InvalidInput(
                f"the global scope's id is '{GLOBAL_SCOPE_ID}'", details={"field": "scope"}
            )
        return
    check_scope_id(scope.id)


def check_scope_id(scope_id: str) -> None:
    if not SCOPE_ID_PATTERN.fullmatch(scope_id):
        raise InvalidInput(
            f"invalid scope id: it must match {SCOPE_ID_PATTERN.pattern}",
            details={"field": "scope"},
        )


class ValueChecksum:
    """HMAC-SHA256 of a value under a service key: comparable, but no dictionary attack."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def of(self, value: SecretValue) -> str:
        return "hmac-sha256:" + hmac.digest(self._key, value.reveal(), "sha256").hex()

    def matches(self, value: SecretValue, checksum: str) -> bool:
        return hmac.compare_digest(self.of(value), checksum)

    def __repr__(self) -> str:
        return "ValueChecksum(<key redacted>)"
