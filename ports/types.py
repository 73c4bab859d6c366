"""The secret type port: what a value of a type must look like, and what it reveals safely.

A type (`certificate`, `ssh_key`, `connection_string`…) is a plugin contribution. It checks a
value before anything is stored, derives metadata that is not secret (a certificate's subject
and notAfter, an SSH key's fingerprint, a connection string's host), and says how the value
renders as environment variables. Neither a problem nor derived metadata ever holds a sensitive
part of the value.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from core.domain.values import SecretValue


@dataclass(frozen=True)
class FieldProblem:
    """Why a value is not a valid value of its type: the field at fault and the reason, never
    the field's content."""

    field: str
    reason: str


@dataclass(frozen=True)
class TypeCheck:
    """The outcome of checking a value: its problems (none when it is valid), the metadata it
    reveals without revealing a secret, and the expiry it carries (a certificate's notAfter)."""

    problems: tuple[FieldProblem, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None

    @property
    def valid(self) -> bool:
        return not self.problems


class SecretType(abc.ABC):
    """One kind of secret. `fields` names the parts of a structured value (a JSON object), and
    `sensitive_fields` the parts that are secret; the others may appear in metadata."""

    name: str
    description: str = ""
    fields: tuple[str, ...] = ()
    sensitive_fields: frozenset[str] = frozenset()

    @abc.abstractmethod
    def validate(self, value: SecretValue) -> TypeCheck:
        """Check a value. Problems are returned, not raised, and never quote the value."""

    @abc.abstractmethod
    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        """The value as environment variables, named from `variable` (a valid variable name)
        where the type has no conventional names of its own (`AWS_ACCESS_KEY_ID`…). Names are
        `[A-Za-z_][A-Za-z0-9_]*` and values text without NUL; a value that is not a valid value
        of the type raises ValueError (with a message that does not quote it)."""
