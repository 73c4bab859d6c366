"""The change stream's record of one change (never a value)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from core.domain.references import format_reference
from core.domain.values import ScopeRef


@dataclass(frozen=True)
class ChangeRecord:
    """One change event as the stream keeps it: which secret, where, which version, when."""

    type: str
    secret_id: UUID
    time: datetime
    scope: ScopeRef | None = None
    scope_path: str | None = None
    name: str | None = None
    environment: str | None = None
    version: int | None = None
    id: int = 0  # the cursor, given when written

    def payload(self) -> dict[str, Any]:
        """The event as the stream and long polling show it (never a value)."""
        scope = None if self.scope is None else {"type": self.scope.type.value, "id": self.scope.id}
        reference = None
        if self.scope is not None and self.name is not None:
            reference = format_reference(self.scope, self.name, self.environment)
        return {
            "id": self.id,
            "type": self.type,
            "time": self.time.isoformat(),
            "secret": {
                "id": str(self.secret_id),
                "scope": scope,
                "name": self.name,
                "environment": self.environment,
                "reference": reference,
            },
            "version": self.version,
        }
