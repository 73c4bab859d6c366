"""Small value types shared across the boundary between core and its adapters."""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from typing import NoReturn
from uuid import UUID


class SecretValue:
    """A secret's plaintext, wrapped so that no repr, str or log line can show it.

    The bytes are reached only through :meth:`reveal`, which makes every place that handles
    plaintext easy to find.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError("SecretValue holds bytes")
        self._data = data

    @classmethod
    def from_text(cls, text: str) -> SecretValue:
        return cls(text.encode("utf-8"))

    def reveal(self) -> bytes:
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._data, other._data)

    def __hash__(self) -> int:
        raise TypeError("SecretValue is not hashable")

    def __repr__(self) -> str:
        return f"SecretValue(<{len(self._data)} bytes redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretValue cannot be pickled")


class ScopeType(enum.StrEnum):
    GLOBAL = "global"
    ORGANIZATION = "organization"
    TEAM = "team"
    PROJECT = "project"
    USER = "user"


GLOBAL_SCOPE_ID = "global"


@dataclass(frozen=True)
class ScopeRef:
    """A scope as the outside world names it: its type and its external id."""

    type: ScopeType
    id: str

    @classmethod
    def global_scope(cls) -> ScopeRef:
        return cls(ScopeType.GLOBAL, GLOBAL_SCOPE_ID)

    def __str__(self) -> str:
        return f"{self.type.value}/{self.id}"


@dataclass(frozen=True)
class VersionKey:
    """Which secret version a stored value belongs to; backends bind values to it."""

    secret_id: UUID
    version: int


@dataclass(frozen=True)
class Principal:
    """Who is calling: `user:alice` (with her groups), `service:ci`, or the development root.

    Role bindings name principals the same way: `user:…`, `group:…`, `service:…`.
    `is_system` is the service itself carrying out what its users configured (the worker's
    retention purges and scheduled rotations, personal scopes included); no caller from outside
    is ever one.
    """

    id: str
    kind: str
    groups: tuple[str, ...] = ()
    is_root: bool = False
    is_system: bool = False

    def _identity(self) -> tuple[str, str, tuple[str, ...], bool, bool]:
        return (self.id, self.kind, self.groups, self.is_root, self.is_system)

    def __eq__(self, other: object) -> bool:
        """The same principal, whatever a `Caller` carries besides (its request's facts)."""
        if not isinstance(other, Principal):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @property
    def identities(self) -> tuple[str, ...]:
        """Every name a role binding may use for this caller: itself and its groups."""
        return (self.id, *self.groups)

    @property
    def user_id(self) -> str | None:
        """The id of the caller's personal scope, for users."""
        return self.id.split(":", 1)[1] if self.kind == "user" else None

    def __str__(self) -> str:
        return self.id
