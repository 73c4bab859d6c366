"""The plain adapter of the audit log port: one transaction per call."""

from __future__ import annotations

from collections.abc import Callable

from core.audit_chain import AuditChain
from core.domain.audit import AuditEvent
from ports.audit_log import AuditLog, ChangeListener
from ports.unit_of_work import UnitOfWork


class TransactionalAuditLog(AuditLog):
    """Appends the events in a unit of work of their own and commits it before returning."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], chain: AuditChain) -> None:
        self._uow_factory = uow_factory
        self._chain = chain

    def append(
        self,
        events: list[AuditEvent],
        changes: ChangeListener | None = None,
        requires_generation: int | None = None,
    ) -> list[AuditEvent]:
        with self._uow_factory() as uow:
            linked = self._chain.append(uow, events, requires_generation=requires_generation)
            if changes is not None:
                changes.record_changes(uow, linked)
            uow.commit()
        return linked

    def __repr__(self) -> str:
        return "TransactionalAuditLog()"
