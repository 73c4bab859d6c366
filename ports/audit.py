"""The audit sink port: where audit events are copied after they are stored in the database.

The database is the audit trail of record (hash-chained, verified); sinks mirror it to where
operators collect logs: stdout, a file, syslog, a SIEM. A sink that fails is logged, never
allowed to fail the request.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.domain.audit import AuditEvent


class AuditSink(abc.ABC):
    name: str

    @abc.abstractmethod
    def emit(self, events: Sequence[AuditEvent]) -> None:
        """Deliver events already committed to the audit trail, in chain order."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release files or connections."""


AuditSinkFactory = Callable[[Mapping[str, Any]], AuditSink]


@dataclass(frozen=True)
class AuditSinkPlugin:
    """A kind of audit sink a plugin contributes (`[audit] sinks = ["<name>"]`)."""

    name: str
    factory: AuditSinkFactory
    description: str = ""
