"""The work queue repository: what the background workers claim under a lease.

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from uuid import UUID

from core.domain.events import OutboxMessage
from core.domain.rotation import RotationPolicy
from core.domain.work import ExpiryNotice, Lease


class WorkQueueRepository(abc.ABC):
    """The worker's due jobs. Each `claim_*` claims at most `limit` jobs under `lease` and
    returns what it claimed; a secret claimed for one job is claimed for every kind."""

    @abc.abstractmethod
    def claim_purges(self, lease: Lease, limit: int) -> list[UUID]:
        """Soft-deleted secrets whose retention window is over."""

    @abc.abstractmethod
    def claim_prunes(self, lease: Lease, limit: int, default_max_versions: int) -> list[UUID]:
        """Live secrets holding more values than their `max_versions` (else the default) with
        at least one version that may be pruned: not current, not pending, not in a grace
        period, not destroyed."""

    @abc.abstractmethod
    def claim_grace_ends(self, lease: Lease, limit: int) -> list[UUID]:
        """Live secrets with an enabled version whose `disable_at` has come."""

    @abc.abstractmethod
    def claim_expiry_notices(
        self, lease: Lease, limit: int, warning_days: Sequence[int]
    ) -> list[UUID]:
        """Live secrets whose effective expiry (the earlier of the secret's and its current
        version's) has come within one of `warning_days` or passed, with no notice sent yet
        for that threshold of that expiry."""

    @abc.abstractmethod
    def claim_rotations(self, lease: Lease, limit: int) -> list[RotationPolicy]:
        """Policies of live secrets whose `next_run_at` has come."""

    @abc.abstractmethod
    def claim_deliveries(self, lease: Lease, limit: int) -> list[OutboxMessage]:
        """Undelivered messages whose `next_attempt_at` has come, oldest first."""

    @abc.abstractmethod
    def release(self, secret_id: UUID, worker: str) -> None:
        """Drop `worker`'s claim on a secret (nothing if another holds it)."""

    @abc.abstractmethod
    def expiry_notice(self, secret_id: UUID) -> ExpiryNotice | None: ...

    @abc.abstractmethod
    def record_expiry_notice(self, secret_id: UUID, notice: ExpiryNotice) -> None: ...
