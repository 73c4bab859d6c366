"""The audit trail: who did what to which secret, when, from where, and how it went.

Every use case records one event per attempt, successful or not, in the hash chain
(`core.audit_chain`). No event ever holds a secret value: where correlating two writes helps,
the version's keyed checksum stands in. What changes nothing (a read) is committed through the
audit log port (`ports.audit_log.AuditLog`) before the caller answers.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from core.audit_chain import AuditChain
from core.domain.audit import AuditAction, AuditEvent, with_fields
from core.domain.callers import request_of
from core.domain.errors import Forbidden, NotFound, ServiceError
from core.domain.values import Principal
from ports.audit import AuditSink
from ports.audit_log import AuditLog, ChangeListener
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def outcome_of(error: BaseException) -> str:
    if isinstance(error, Forbidden):
        return "denied"
    if isinstance(error, NotFound):
        return "not_found"
    return "error"


class Attempt:
    """One audited attempt in progress: fill in what is learnt, then record its success
    inside the unit of work that makes the change (so both commit together)."""

    def __init__(self, trail: AuditTrail, event: AuditEvent) -> None:
        self._trail = trail
        self._event = event
        self._learnt: dict[str, Any] = {}  # applied to the event when it is next looked at
        self.recorded = False
        self.linked: list[AuditEvent] = []

    @property
    def event(self) -> AuditEvent:
        if self._learnt:
            self._event, self._learnt = with_fields(self._event, **self._learnt), {}
        return self._event

    def learn(self, **fields: Any) -> None:
        self._learnt.update(fields)

    def succeed(
        self,
        uow: UnitOfWork,
        *,
        also: Sequence[AuditEvent] = (),
        at_commit: bool = False,
        **fields: Any,
    ) -> None:
        """Record success in the same transaction as the change (commit it with the change),
        with the events of what it did along the way (`also`, made by `related`). With
        `at_commit`, the events go to the chain with the COMMIT itself where the store can
        (`AuditChain.append_at_commit`): the caller then commits right away, and does the
        transaction again on `CheckpointDue` (without `at_commit`)."""
        self.learn(outcome="success", **fields)
        events = [self.event, *also]
        if at_commit:
            events = [event.bounded() for event in events]
            if self._trail.changes is not None:  # before the append: it needs no seq
                self._trail.changes.record_changes(uow, events)
            self.linked = self._trail.chain.append_at_commit(uow, events)
        else:
            self.linked = self._trail.chain.append(uow, events)
            if self._trail.changes is not None:
                self._trail.changes.record_changes(uow, self.linked)
        self.recorded = True

    def succeed_in_parts(
        self, uow: UnitOfWork, parts: Iterable[Sequence[AuditEvent]], **fields: Any
    ) -> None:
        """`succeed` for an attempt that did a great many things (an import): its own event,
        then the events of `parts` one part after another under one lock of the chain, each
        part bounded, hashed and sent before the next is made, so that they are never all in
        memory at once; the trail's sinks get them after the commit (kept only for them)."""
        self.learn(outcome="success", **fields)
        chain, changes, keep = self._trail.chain, self._trail.changes, self._trail.has_sinks
        head_seq, head_hash = uow.audit.lock_head()
        self.linked = []
        for part in itertools.chain([[self.event]], parts):
            if not part:
                continue
            linked = chain.link(uow, [event.bounded() for event in part], head_seq, head_hash)
            if changes is not None:
                changes.record_changes(uow, linked)
            last = linked[-1]
            assert last.seq is not None and last.hash is not None  # set by the link
            head_seq, head_hash = last.seq, last.hash
            if keep or not self.linked:
                self.linked.extend(linked)
        self.recorded = True

    def succeed_durably(
        self,
        *,
        also: Sequence[AuditEvent] = (),
        requires_generation: int | None = None,
        **fields: Any,
    ) -> None:
        """Record success of an attempt that changed nothing (a read), durably, before the
        caller answers, through the trail's audit log. `requires_generation`: see
        `AuditLog.append` (raises `StaleRead`, nothing recorded)."""
        self.learn(outcome="success", **fields)
        self.linked = self._trail.commit_now([self.event, *also], requires_generation)
        self.recorded = True

    def related(self, action: AuditAction, resource: str, **fields: Any) -> AuditEvent:
        """An event of the same caller and request, for something this attempt did."""
        return with_fields(self.event, action=str(action), resource=resource, details={}, **fields)


class AuditTrail:
    """Records audit events, stamped with the request's facts when the actor is a `Caller`
    (one trail serves every request): a change's success in the change's own transaction
    (`Attempt.succeed`), everything else through the audit log (`ports.audit_log.AuditLog`),
    committed before the caller answers."""

    def __init__(
        self,
        audit_log: AuditLog,
        chain: AuditChain,
        clock: Clock,
        sinks: Sequence[AuditSink] = (),
        changes: ChangeListener | None = None,
    ) -> None:
        self._log = audit_log
        self.chain = chain
        self._clock = clock
        self._sinks = sinks
        self.changes = changes

    @property
    def has_sinks(self) -> bool:
        return bool(self._sinks)

    def commit_now(
        self, events: list[AuditEvent], requires_generation: int | None = None
    ) -> list[AuditEvent]:
        """Append `events` and commit them before returning (see `AuditLog.append`)."""
        return self._log.append(events, self.changes, requires_generation)

    @contextmanager
    def attempt(
        self, actor: Principal, action: AuditAction, resource: str, **fields: Any
    ) -> Iterator[Attempt]:
        """Wrap a use case: a failure is recorded (denied, not found, error) and re-raised."""
        attempt = Attempt(self, self._event(actor, action, resource, **fields))
        try:
            yield attempt
        except ServiceError as error:
            self._record_failure(attempt, outcome_of(error), error.code)
            raise
        except Exception as error:
            self._record_failure(attempt, "error", type(error).__name__)
            raise
        if not attempt.recorded:
            raise RuntimeError(f"use case {action} did not record its success")  # a bug
        self._emit(attempt.linked)

    def _event(
        self, actor: Principal, action: AuditAction, resource: str, **fields: Any
    ) -> AuditEvent:
        request = request_of(actor)
        return AuditEvent(
            time=self._clock.now(),
            actor=actor.id,
            actor_type=actor.kind,
            action=str(action),  # the text itself, as stored events hold it
            resource=resource,
            outcome="success",
            request_id=request.request_id,
            source_ip=request.source_ip,
            user_agent=request.user_agent,
            **fields,
        )

    def refused(self, actor: Principal, action: AuditAction, resource: str, reason: str) -> None:
        """Record an attempt refused before any use case ran (a bad token, say)."""
        self._record(replace(self._event(actor, action, resource), outcome="denied", reason=reason))

    def _record_failure(self, attempt: Attempt, outcome: str, reason: str) -> None:
        self._record(replace(attempt.event, outcome=outcome, reason=reason))

    def _record(self, event: AuditEvent) -> None:
        event = event.bounded()  # the log line below quotes it
        outcome = event.outcome
        try:
            linked = self.commit_now([event])  # the change feed skips what did not succeed
        except Exception:  # the caller sees the original failure; the audit gap is logged
            log.error(
                "could not record audit event %s %s (%s)",
                event.action,
                event.resource,
                outcome,
                exc_info=True,
            )
        else:
            self._emit(linked)

    def _emit(self, events: list[AuditEvent]) -> None:
        """Copy committed events to the configured sinks; a failing sink is only logged."""
        for sink in self._sinks:
            try:
                sink.emit(events)
            except Exception:
                log.warning("audit sink %s failed", sink.name, exc_info=True)
