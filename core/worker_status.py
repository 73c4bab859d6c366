"""What the operator can see of the workers: each one's heartbeat and job, and the backlog.

In full (hosts, processes, jobs) for admins and auditors of the global scope; `summary` is for
the unauthenticated readiness probe, which shows only the age of the latest heartbeat, how many
workers are alive and the backlog's counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from core.access import allowed, caller_bindings
from core.audit import AuditTrail
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import Forbidden
from core.domain.values import Principal, ScopeRef
from core.worker import ALIVE_WITHIN
from ports.security import Clock
from ports.unit_of_work import UnitOfWork
from ports.workers import Backlog, WorkerRecord, WorkerRegistry


@dataclass(frozen=True)
class WorkerState:
    """A worker's row, with how long ago it last beat, and whether that is recent enough for it
    to count as alive (within `ALIVE_WITHIN`)."""

    record: WorkerRecord
    silent_for: timedelta

    @property
    def alive(self) -> bool:
        return self.silent_for <= ALIVE_WITHIN


@dataclass(frozen=True)
class WorkerStatus:
    workers: list[WorkerState]
    backlog: Backlog

    @property
    def last_heartbeat_age(self) -> timedelta | None:
        """Since the latest heartbeat of any worker; None when no worker has a row."""
        return min((state.silent_for for state in self.workers), default=None)

    @property
    def alive(self) -> int:
        return sum(state.alive for state in self.workers)


class WorkerStatusService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        registry: WorkerRegistry,
        clock: Clock,
        audit: AuditTrail,
    ) -> None:
        self._uow_factory = uow_factory
        self._registry = registry
        self._clock = clock
        self._audit = audit

    def status(self, actor: Principal) -> WorkerStatus:
        """Every worker and the backlog: admins and auditors of the global scope."""
        with (
            self._audit.attempt(actor, AuditAction.WORKER_STATUS, "workers") as attempt,
            self._uow_factory() as uow,
        ):
            now = self._clock.now()
            root = uow.scopes.get(ScopeRef.global_scope())
            assert root is not None  # the migrations create it
            target = Target(root.ref, root.path)
            if not allowed(actor, Action.AUDIT, target, caller_bindings(uow, actor, now), now):
                raise Forbidden("the workers' status is for admins and auditors of global")
            status = self.summary()
            attempt.succeed(uow, details={"workers": len(status.workers)})
            uow.commit()
        return status

    def summary(self) -> WorkerStatus:
        """The same, unchecked: for the readiness probe, which shows only counts and ages."""
        now = self._clock.now()
        workers = [
            WorkerState(record, max(now - record.last_heartbeat_at, timedelta(0)))
            for record in self._registry.workers()
        ]
        return WorkerStatus(workers, self._registry.backlog(now))
