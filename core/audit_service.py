"""Reading the audit trail: queries, exports, verification of the chain, retention.

Limited to `admin` and `auditor` roles: of the scope a query is narrowed to, or of the global
scope for the whole trail (verification, export without a scope). Pruning deletes history, which
reading it does not allow: admins of the global scope only.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from core.access import authorize
from core.audit import AuditTrail
from core.audit_chain import GENESIS, chain_segments, checkpoint_mac, verify_links
from core.domain.access import Action, Target
from core.domain.audit import (
    AuditAction,
    AuditEvent,
    AuditFilter,
    BrokenLink,
    ChainSegment,
    Checkpoint,
)
from core.domain.errors import InvalidInput, NotFound
from core.domain.values import Principal, ScopeRef
from core.policy import check_scope
from ports.repositories.audit import ChainSegments
from ports.security import Clock
from ports.unit_of_work import UnitOfWork

MAX_PAGE = 1000
# From this many events on, a verification is cut into segments verified side by side when the
# store can (`ChainSegments`: several processes); below, starting them costs more than it saves.
PARALLEL_FROM = 100_000


@dataclass(frozen=True)
class Verification:
    checked: int
    first_seq: int | None
    last_seq: int | None
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class AuditService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        trail: AuditTrail,
        chain_key: bytes,
        clock: Clock,
        segments: ChainSegments | None = None,
        parallel_from: int = PARALLEL_FROM,
    ) -> None:
        self._uow_factory = uow_factory
        self._trail = trail
        self._key = chain_key
        self._clock = clock
        self._segments = segments
        self._parallel_from = parallel_from

    def search(
        self, actor: Principal, criteria: AuditFilter, scope: ScopeRef | None, limit: int
    ) -> list[AuditEvent]:
        """Newest first; continue with `before_seq` = the last seq of the previous page."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit is between 1 and {MAX_PAGE}", details={"field": "limit"})
        with self._uow_factory() as uow:
            criteria = replace(criteria, scope_path=self._authorize(uow, actor, scope))
            return uow.audit.search(criteria, limit)

    def export(
        self, actor: Principal, criteria: AuditFilter, scope: ScopeRef | None
    ) -> Iterator[AuditEvent]:
        """Every matching event, oldest first, streamed; the export itself is audited."""
        with self._trail.attempt(actor, AuditAction.AUDIT_EXPORT, "audit") as attempt:
            with self._uow_factory() as uow:
                criteria = replace(criteria, scope_path=self._authorize(uow, actor, scope))
                attempt.succeed(uow, scope=str(scope) if scope else None)
                uow.commit()
        return self._stream(criteria)

    def verify(
        self, actor: Principal, from_seq: int | None = None, to_seq: int | None = None
    ) -> Verification:
        """Check the chain (or a range of it) and the signed checkpoints in it. A range that
        starts past the chain's last event holds nothing to verify: nothing is checked."""
        with self._trail.attempt(actor, AuditAction.AUDIT_VERIFY, "audit") as attempt:
            with self._uow_factory() as uow:
                self._authorize(uow, actor, None)
                result = self._verify(uow, from_seq, to_seq)
                attempt.succeed(uow, details={"ok": result.ok, "checked": result.checked})
                uow.commit()
        return result

    def prune(self, actor: Principal, older_than: datetime) -> int:
        """Delete events older than `older_than`, up to the last signed checkpoint before it,
        which then anchors the verification of what remains."""
        with self._trail.attempt(actor, AuditAction.AUDIT_PRUNE, "audit") as attempt:
            with self._uow_factory() as uow:
                root = uow.scopes.get(ScopeRef.global_scope())
                assert root is not None  # the migrations create it
                authorize(uow, actor, Action.ADMIN, Target(root.ref, root.path), self._clock.now())
                anchors = [
                    checkpoint
                    for checkpoint in uow.audit.checkpoints()
                    if checkpoint.created_at < older_than
                ]
                removed = uow.audit.prune(anchors[-1].seq) if anchors else 0
                attempt.succeed(uow, details={"removed": removed})
                uow.commit()
        return removed

    def _verify(self, uow: UnitOfWork, from_seq: int | None, to_seq: int | None) -> Verification:
        # The head first, then the checkpoints, then the events up to the head: while others
        # append, everything read after the head holds at least what it names, and nothing
        # past it is judged without its checkpoint (each commits with its event).
        head_seq, _ = uow.audit.head()
        if from_seq is not None and from_seq > head_seq:
            return Verification(0, None, None, None)  # a range past the head: nothing in it
        first = uow.audit.first_seq()
        if first is None:
            return Verification(0, None, None, self._check_head(head_seq, 0))
        checkpoints = uow.audit.checkpoints()
        start = max(first, from_seq or first)
        if start == 1:
            prev_hash = GENESIS
        else:
            anchor = self._anchor(uow, start, checkpoints, first)
            if isinstance(anchor, BrokenLink):
                return Verification(0, start, None, anchor)
            prev_hash = anchor
        end = head_seq if to_seq is None else min(to_seq, head_seq)
        in_range = [checkpoint for checkpoint in checkpoints if start <= checkpoint.seq <= end]
        whole = ChainSegment(start, end, prev_hash, tuple(in_range))
        if self._intact_in_segments(whole):
            checked, broken = end - start + 1, None
        else:
            checked, broken = verify_links(
                uow.audit.chain_links(start, end),
                in_range,
                self._key,
                start_seq=start,
                start_prev_hash=prev_hash,
                checkpoint_every=self._trail.chain.every,
            )
        last = start + checked - 1 if checked else None
        if broken is None and to_seq is None:
            broken = self._check_head(head_seq, last)
        return Verification(checked, start, last, broken)

    def _intact_in_segments(self, whole: ChainSegment) -> bool:
        """Whether the events of `whole` are intact, verified in segments side by side: each
        from the signed checkpoint before it, and each checking that its last event has the
        hash of the checkpoint the next one starts from, so that together they check what one
        pass in order does. False when that cannot be done, or any segment finds anything: one
        pass in order then verifies, and names the first broken link as it always has."""
        if self._segments is None or whole.last - whole.first + 1 < self._parallel_from:
            return False
        segments = chain_segments(whole, self._segments.processes, self._key)
        if segments is None:
            return False
        results = self._segments.verify(segments, self._key, self._trail.chain.every)
        return (
            results is not None
            and len(results) == len(segments)
            and all(
                broken is None and checked == segment.last - segment.first + 1
                for segment, (checked, broken) in zip(segments, results, strict=True)
            )
        )

    @staticmethod
    def _check_head(head_seq: int, last: int | None) -> BrokenLink | None:
        """Events cut from the end leave a chain that still links: the head row says where
        it ended."""
        if last is not None and head_seq > last:
            return BrokenLink(last + 1, f"events {last + 1} to {head_seq} are missing")
        return None

    def _anchor(
        self, uow: UnitOfWork, start: int, checkpoints: list[Checkpoint], first: int
    ) -> str | BrokenLink:
        """The trusted hash before `start`: a signed checkpoint where the trail was pruned,
        else the stored predecessor (a range check within an intact trail)."""
        if start == first:
            anchor = next((c for c in checkpoints if c.seq == start - 1), None)
            if anchor is None or not hmac.compare_digest(
                anchor.mac, checkpoint_mac(self._key, anchor.seq, anchor.hash)
            ):
                return BrokenLink(
                    start, "the events before it are gone without a signed checkpoint"
                )
            return str(anchor.hash)
        previous = next(uow.audit.events(start - 1, start - 1), None)
        if previous is None or previous.hash is None:
            return BrokenLink(start - 1, f"event {start - 1} is missing")
        return previous.hash

    def _stream(self, criteria: AuditFilter) -> Iterator[AuditEvent]:
        with self._uow_factory() as uow:
            for event in uow.audit.events():
                if _matches(event, criteria):
                    yield event

    def _authorize(self, uow: UnitOfWork, actor: Principal, scope: ScopeRef | None) -> str | None:
        """Audit rights at `scope` (or global); the scope path a query is then limited to."""
        path = authorize_audit(uow, actor, scope, self._clock.now())
        return path if scope is not None else None


def authorize_audit(
    uow: UnitOfWork, actor: Principal, scope: ScopeRef | None, now: datetime
) -> str:
    """Require the audit right (admins, auditors) at `scope`, or at global; its path."""
    ref = scope or ScopeRef.global_scope()
    check_scope(ref)
    found = uow.scopes.get(ref)
    if found is None:
        raise NotFound(f"no scope {ref}")
    authorize(uow, actor, Action.AUDIT, Target(found.ref, found.path), now)
    return found.path


def _matches(event: AuditEvent, criteria: AuditFilter) -> bool:
    for name in ("actor", "resource", "action", "outcome"):
        wanted = getattr(criteria, name)
        if wanted is not None and getattr(event, name) != wanted:
            return False
    if criteria.scope_path and not (event.scope_path or "").startswith(criteria.scope_path):
        return False
    if criteria.since is not None and event.time < criteria.since:
        return False
    return criteria.until is None or event.time < criteria.until
