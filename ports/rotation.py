"""The rotator port: what makes a secret's next value and hands it to the system that uses it.

Rotators are plugins (`secret_management_register_rotators`). A rotator never sees the old
value. Its settings live in the rotation policy, in the database, and come from callers: they
choose among what the operator configured (a rotation target by name) and never name a key, a
file, an environment variable or a URL themselves. A rotator that hands values to a system
outside the service says so (`calls_out`): attaching it takes the admin role at the secret's
scope, and it serves only the scopes its configuration allows (`scopes_served`). Rotators
raise the errors of `core.domain.errors`: `InvalidInput` for bad settings, `RotationFailed`
when the owning system refuses; what reaches a caller names no path, host, status or exception.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from core.domain.values import ScopeRef, SecretValue
from ports.webhooks import WebhookTarget


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
    # Whether it hands new values to a system outside the service (a webhook): attaching it
    # to a secret takes the admin role at the secret's scope, not only the editor role.
    calls_out: bool = False

    @abc.abstractmethod
    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Refuse settings this rotator does not understand, naming the key. For a rotator that
        calls out, only asked once the caller is known to administer the secret's scope (and by
        the runs of a stored policy), so its errors' details may list configured targets; their
        message is what a failed run records, which editors and viewers see: no names there."""

    @abc.abstractmethod
    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        """A new value."""

    def scopes_served(self, settings: Mapping[str, Any]) -> Collection[ScopeRef] | None:
        """The scopes whose secrets may use these (checked) settings, each with what lies below
        it, as the operator configured them; None: any scope."""
        return None

    def apply(  # noqa: B027 - an optional step, nothing to do unless overridden
        self, target: RotationTarget, value: SecretValue, settings: Mapping[str, Any]
    ) -> None:
        """Have the owning system accept the pending value; raise `RotationFailed` if it
        does not. Called again with the same value after a crash, so it must be idempotent."""


@dataclass(frozen=True)
class RotatorContext:
    """What the host gives a rotator factory: the operator's rotation targets
    (`[rotation.webhooks.<name>]`, keys read at start), and the environment for a plugin's own
    operator-level options (never for a name a policy's settings give)."""

    environ: Mapping[str, str]
    webhooks: Mapping[str, WebhookTarget] = field(default_factory=dict)


RotatorFactory = Callable[[RotatorContext], Rotator]


@dataclass(frozen=True)
class RotatorPlugin:
    """A kind of rotator a plugin contributes; a rotation policy names it (`"rotator"`)."""

    name: str
    factory: RotatorFactory
    description: str = ""
