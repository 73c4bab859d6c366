"""The rotator port: what makes a secret's next value and hands it to the system that uses it.

Rotators are plugins (`secret_management_register_rotators`). A rotator never sees the old
value. Its settings live in the rotation policy, in the database: they name keys and tokens by
reference (an environment variable or a file), never inline. Rotators raise the errors of
`core.errors`: `InvalidInput` for bad settings, `RotationFailed` when the owning system refuses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ports.values import SecretValue


@dataclass(frozen=True)
class RotationTarget:
    """The secret being rotated, as a rotator is told about it, and the pending version."""

    secret_id: UUID
    name: str
    scope: str
    environment: str | None
    version: int


class Rotator(abc.ABC):
    name: str

    @abc.abstractmethod
    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Refuse settings this rotator does not understand, naming the key."""

    @abc.abstractmethod
    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        """A new value."""

    def apply(  # noqa: B027 - an optional step, nothing to do unless overridden
        self, target: RotationTarget, value: SecretValue, settings: Mapping[str, Any]
    ) -> None:
        """Have the owning system accept the pending value; raise `RotationFailed` if it
        does not. Called again with the same value after a crash, so it must be idempotent."""


@dataclass(frozen=True)
class RotatorContext:
    """What the host gives a rotator factory: the environment its key references name."""

    environ: Mapping[str, str]


RotatorFactory = Callable[[RotatorContext], Rotator]


@dataclass(frozen=True)
class RotatorPlugin:
    """A kind of rotator a plugin contributes; a rotation policy names it (`"rotator"`)."""

    name: str
    factory: RotatorFactory
    description: str = ""
