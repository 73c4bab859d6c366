"""Change events: what subscribers hear when a secret changes, through a database outbox.

An event is written to the outbox in the transaction of the change it reports, one message per
configured subscriber, so it is never lost and never sent for a change that rolled back; the
worker delivers the messages (`EventDelivery`). Changes audited as a success become events as
their success is recorded (`ChangeFeed.record_changes`, called by the audit trail); the worker
and rotations add the events that are not a caller's change (`ChangeFeed.record`). An event
never carries a value: which secret, which version, who, when, and value-free facts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from core.audit import AuditTrail
from core.domain.audit import AuditAction, AuditEvent
from core.domain.changes import ChangeRecord
from core.domain.errors import DeliveryFailed
from core.domain.events import OutboxMessage
from core.domain.secrets import Secret
from core.domain.values import Principal, ScopeRef, ScopeType
from core.domain.work import Lease
from ports.events import EventPublisher
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "secret.created",
    "secret.updated",
    "secret.rotated",
    "secret.rotation_failed",
    "secret.expiring",
    "secret.expired",
    "secret.deleted",
    "secret.restored",
    "secret.purged",
)

# The audited actions whose success changes a secret, and the event each one makes.
CHANGE_EVENTS: dict[str, str] = {
    AuditAction.SECRET_CREATE: "secret.created",
    AuditAction.SECRET_ADOPT: "secret.created",
    AuditAction.SECRET_WRITE_VALUE: "secret.updated",
    AuditAction.SECRET_UPDATE: "secret.updated",
    AuditAction.SECRET_ROLLBACK: "secret.updated",
    AuditAction.SECRET_VERSION_DISABLE: "secret.updated",
    AuditAction.SECRET_VERSION_ENABLE: "secret.updated",
    AuditAction.SECRET_VERSION_DESTROY: "secret.updated",
    AuditAction.SECRET_ROTATE: "secret.rotated",
    AuditAction.SECRET_DELETE: "secret.deleted",
    AuditAction.SECRET_RESTORE: "secret.restored",
    AuditAction.SECRET_PURGE: "secret.purged",
}
RESOURCE_PREFIX = "secret:"  # audit resources of secrets: "secret:<uuid>"


def _change_kind(event: AuditEvent) -> str | None:
    """The change event an audited success makes, if any."""
    kind = CHANGE_EVENTS.get(event.action)
    if kind is None or event.outcome != "success":
        return None
    if not event.resource.startswith(RESOURCE_PREFIX):
        return None  # e.g. a create refused before the secret had an id
    return kind


class ChangeFeed:
    """Writes events to the outbox for every configured subscriber (none: nothing is written)."""

    def __init__(self, targets: Sequence[str] = ()) -> None:
        self.targets = tuple(targets)

    def changes_in(self, events: Sequence[AuditEvent]) -> bool:
        # Every change is also written to the change stream's log, subscribers or not.
        return any(_change_kind(event) for event in events)

    def record_changes(self, uow: UnitOfWork, events: Sequence[AuditEvent]) -> None:
        for event in events:
            kind = _change_kind(event)
            if kind is None:
                continue
            facts = {"change": event.action} if kind == "secret.updated" else {}
            self.record(
                uow,
                kind,
                UUID(event.resource.removeprefix(RESOURCE_PREFIX)),
                at=event.time,
                actor=event.actor,
                version=event.version,
                scope=event.scope,
                **facts,
            )

    def record(
        self,
        uow: UnitOfWork,
        kind: str,
        secret_id: UUID,
        *,
        at: datetime,
        actor: str,
        version: int | None = None,
        scope: str | None = None,
        **facts: str | int | None,
    ) -> None:
        """Queue one event about a secret, in `uow`. `facts` must be value-free."""
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kind}")
        # Read once for both records; the secret just written comes from the unit of work's
        # own writes (no round trip), a purged one is gone.
        secret = uow.secrets.get(secret_id)
        uow.outbox.record_change(_change_record(uow, kind, secret_id, secret, at, version, scope))
        if not self.targets:
            return
        event_id = uuid.uuid4()
        payload = {
            "id": str(event_id),
            "type": kind,
            "time": at.isoformat(),
            "secret": _describe(secret_id, secret, scope),
            "version": version,
            "actor": actor,
            **facts,
        }
        uow.outbox.add(
            [
                OutboxMessage(
                    id=uuid.uuid4(),
                    event_id=event_id,
                    type=kind,
                    target=target,
                    payload=payload,
                    created_at=at,
                    secret_id=secret_id,
                    next_attempt_at=at,
                )
                for target in self.targets
            ]
        )


def _describe(secret_id: UUID, secret: Secret | None, scope: str | None) -> dict[str, Any]:
    """Which secret: its id, and where it lives while it exists (a purged one is gone)."""
    if secret is None:
        return {"id": str(secret_id), "scope": scope}
    return {
        "id": str(secret_id),
        "scope": str(secret.scope),
        "name": secret.name,
        "environment": secret.environment,
    }


def _change_record(
    uow: UnitOfWork,
    kind: str,
    secret_id: UUID,
    secret: Secret | None,
    at: datetime,
    version: int | None,
    scope: str | None,
) -> ChangeRecord:
    """The change stream's record of an event (`core.changes`): where the secret lives, as read
    now; for a purged secret, only its scope (from the audit event) is still known."""
    if secret is not None:
        return ChangeRecord(
            type=kind,
            secret_id=secret_id,
            time=at,
            scope=secret.scope,
            scope_path=secret.scope_path,
            name=secret.name,
            environment=secret.environment,
            version=version,
        )
    ref = _scope_ref(scope)
    found = None if ref is None else uow.scopes.get(ref)
    return ChangeRecord(
        type=kind,
        secret_id=secret_id,
        time=at,
        scope=ref,
        scope_path=None if found is None else found.path,
        version=version,
    )


def _scope_ref(text: str | None) -> ScopeRef | None:
    """`type/id` (as audit events name scopes) as a `ScopeRef`; None if it is not one."""
    if not text or "/" not in text:
        return None
    scope_type, _, scope_id = text.partition("/")
    try:
        return ScopeRef(ScopeType(scope_type), scope_id)
    except ValueError:
        return None


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retries with exponential backoff (30 s, 1 min, 2 min … at most an hour apart), then
    the message is given up on; delivered messages are kept a week, then pruned."""

    max_attempts: int = 12
    first_retry: timedelta = timedelta(seconds=30)
    max_retry: timedelta = timedelta(hours=1)
    keep_delivered: timedelta = timedelta(days=7)

    def retry_at(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after `attempts` failed attempts, or None to give up."""
        if attempts >= self.max_attempts:
            return None
        return now + min(self.first_retry * (1 << (attempts - 1)), self.max_retry)


class EventDelivery:
    """The worker's delivery job: claimed messages go to their subscribers, each settled as
    delivered or to be retried; one audit event per batch."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        publisher: EventPublisher,
        clock: Clock,
        audit: AuditTrail,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._publisher = publisher
        self._clock = clock
        self._audit = audit
        self._policy = policy or DeliveryPolicy()

    def deliver_due(self, actor: Principal, lease: Lease, limit: int) -> int:
        """Deliver up to `limit` due messages; how many were claimed."""
        with self._uow_factory() as uow:
            messages = uow.work.claim_deliveries(lease, limit)
            uow.commit()
        if not messages:
            return 0
        with self._audit.attempt(actor, AuditAction.WORKER_DELIVER_EVENTS, "outbox") as attempt:
            settled = [self._deliver(message) for message in messages]
            delivered = sum(message.delivered_at is not None for message in settled)
            now = self._clock.now()
            with self._uow_factory() as uow:
                for message in settled:
                    uow.outbox.settle(message, lease.worker)
                pruned = uow.outbox.prune_delivered(now - self._policy.keep_delivered)
                attempt.succeed(
                    uow,
                    details={
                        "delivered": delivered,
                        "failed": len(settled) - delivered,
                        "pruned": pruned,
                    },
                )
                uow.commit()
        return len(messages)

    def _deliver(self, message: OutboxMessage) -> OutboxMessage:
        attempts = message.attempts + 1
        try:
            self._publisher.publish(message)
        except DeliveryFailed as error:
            log.warning(
                "event %s (%s) to '%s', attempt %d: %s",
                message.event_id,
                message.type,
                message.target,
                attempts,
                error.message,
            )
            return replace(
                message,
                attempts=attempts,
                next_attempt_at=self._policy.retry_at(attempts, self._clock.now()),
                last_error=error.message[:512],
            )
        return replace(
            message,
            attempts=attempts,
            delivered_at=self._clock.now(),
            next_attempt_at=None,
            last_error=None,
        )
