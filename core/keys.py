"""Key management: rotate the key-encryption key, re-wrap the stored data keys under the new
one (values are never decrypted), and see which key wraps how many values.

The re-wrap job takes blobs wrapped by any other key than the active one, in id order, a batch
per transaction, each batch audited as it commits. It is idempotent and resumable by
construction: what is left to do is exactly the blobs still naming an old key, so a run that
stops — killed, or at its `limit` — is resumed by running it again, and concurrent runs share
the work (rows another run holds are skipped). A blob whose data key does not unwrap is
reported by id and left as it is, never skipped silently. Once a replaced key wraps nothing,
it is marked retired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from uuid import UUID

from core.access import authorize
from core.audit import AuditTrail
from core.domain.access import Action, Target
from core.domain.audit import AuditAction
from core.domain.errors import ConfigurationError, InvalidInput, ValueIntegrityError
from core.domain.keys import KeyState, KeyVersion, StoredBlob
from core.domain.values import Principal, ScopeRef
from ports.keys import BlobRewrapper, KeyUnitOfWork
from ports.security import Clock, KeyProvider

DEFAULT_BATCH = 500
MAX_BATCH = 10_000


@dataclass(frozen=True)
class KeyUsage:
    """A key version and how many stored values it wraps."""

    id: str
    provider: str
    state: KeyState | None  # None: blobs name a key the registry never recorded
    blobs: int


@dataclass(frozen=True)
class FailedBlob:
    id: UUID
    key_id: str
    problem: str


@dataclass(frozen=True)
class RewrapProgress:
    """After each batch: how many were re-wrapped and failed so far in this run."""

    rewrapped: int
    failed: int


@dataclass(frozen=True)
class RewrapReport:
    active_key: str
    rewrapped: int
    batches: int
    failed: tuple[FailedBlob, ...]
    remaining: int  # blobs still under another key when the run ended
    retired: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.remaining == 0


class KeyService:
    def __init__(
        self,
        uow_factory: Callable[[], KeyUnitOfWork],
        key_provider: KeyProvider,
        rewrapper: BlobRewrapper,
        audit: AuditTrail,
        clock: Clock,
    ) -> None:
        self._uow_factory = uow_factory
        self._keys = key_provider
        self._rewrapper = rewrapper
        self._audit = audit
        self._clock = clock

    def usage(self, actor: Principal) -> list[KeyUsage]:
        """Every key version recorded or named by a blob, with its count of blobs."""
        with self._uow_factory() as uow:
            self._authorize(uow, actor)
            versions = uow.keys.versions()
            counts = uow.blobs.count_by_key()
        known = [
            KeyUsage(version.id, version.provider, version.state, counts.pop(version.id, 0))
            for version in versions
        ]
        unknown = [KeyUsage(key_id, "", None, count) for key_id, count in sorted(counts.items())]
        return known + unknown

    def outdated(self, actor: Principal) -> int:
        """How many blobs a re-wrap has to do (for a progress bar)."""
        active = self._keys.active_key().id
        return sum(usage.blobs for usage in self.usage(actor) if usage.id != active and usage.blobs)

    def rotate(self, actor: Principal) -> KeyVersion:
        """A new active key version from the key provider; re-wrap afterwards."""
        with self._audit.attempt(actor, AuditAction.KEY_ROTATE, "keys") as attempt:
            with self._uow_factory() as uow:
                self._authorize(uow, actor)
            previous = self._keys.active_key().id
            try:
                key = self._keys.rotate()
            except NotImplementedError as error:
                raise ConfigurationError(str(error)) from None
            now = self._clock.now()
            with self._uow_factory() as uow:
                uow.keys.record_active(key.id, self._keys.name, now)
                attempt.succeed(uow, resource=f"key:{key.id}", details={"previous": previous})
                uow.commit()
        return KeyVersion(key.id, self._keys.name, KeyState.ACTIVE, now)

    def rewrap(
        self,
        actor: Principal,
        batch_size: int = DEFAULT_BATCH,
        limit: int | None = None,
        on_batch: Callable[[RewrapProgress], None] | None = None,
    ) -> RewrapReport:
        """Re-wrap every data key not under the active key (at most about `limit` of them)."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise InvalidInput(
                f"batch_size is between 1 and {MAX_BATCH}", details={"field": "batch_size"}
            )
        if limit is not None and limit < 1:
            raise InvalidInput("limit is at least 1", details={"field": "limit"})
        active = self._keys.active_key().id
        with self._audit.attempt(actor, AuditAction.KEY_REWRAP, f"key:{active}") as attempt:
            with self._uow_factory() as uow:
                self._authorize(uow, actor)
                uow.keys.record_active(active, self._keys.name, self._clock.now())
                uow.commit()
            after: UUID | None = None
            rewrapped, batches = 0, 0
            failed: list[FailedBlob] = []
            while limit is None or rewrapped + len(failed) < limit:
                left = None if limit is None else limit - rewrapped - len(failed)
                size = batch_size if left is None else min(batch_size, left)
                with self._uow_factory() as uow:
                    batch = uow.blobs.outdated(active, after, size)
                    if not batch:
                        break
                    done, problems = self._rewrap_batch(batch, active)
                    uow.blobs.replace(done)
                    event = replace(
                        attempt.related(AuditAction.KEY_REWRAP_BATCH, f"key:{active}"),
                        details={
                            "rewrapped": len(done),
                            "from_keys": sorted({blob.key_id for blob in batch}),
                            "failed": [str(problem.id) for problem in problems],
                        },
                    )
                    self._audit.chain.append(uow, [event])
                    uow.commit()
                after, batches = batch[-1].id, batches + 1
                rewrapped, failed = rewrapped + len(done), failed + problems
                if on_batch is not None:
                    on_batch(RewrapProgress(rewrapped, len(failed)))
            with self._uow_factory() as uow:
                counts = uow.blobs.count_by_key()
                retired = tuple(
                    version.id
                    for version in uow.keys.versions()
                    if version.id != active
                    and version.state is not KeyState.RETIRED
                    and not counts.get(version.id)
                )
                for key_id in retired:
                    uow.keys.set_state(key_id, KeyState.RETIRED)
                remaining = sum(count for key_id, count in counts.items() if key_id != active)
                report = RewrapReport(active, rewrapped, batches, tuple(failed), remaining, retired)
                attempt.succeed(
                    uow,
                    details={
                        "rewrapped": rewrapped,
                        "batches": batches,
                        "failed": len(failed),
                        "remaining": remaining,
                        "retired": list(retired),
                    },
                )
                uow.commit()
        return report

    def _rewrap_batch(
        self, batch: list[StoredBlob], active: str
    ) -> tuple[list[StoredBlob], list[FailedBlob]]:
        done, problems = [], []
        for stored in batch:
            try:
                blob = self._rewrapper.rewrap(stored.blob)
            except ValueIntegrityError as error:
                problems.append(FailedBlob(stored.id, stored.key_id, error.message))
                continue
            done.append(replace(stored, key_id=active, blob=blob))
        return done, problems

    def _authorize(self, uow: KeyUnitOfWork, actor: Principal) -> None:
        """Keys protect every value: admins of the global scope only."""
        root = uow.scopes.get(ScopeRef.global_scope())
        assert root is not None  # the migrations create it
        authorize(uow, actor, Action.ADMIN, Target(root.ref, root.path), self._clock.now())
