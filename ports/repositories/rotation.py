"""The rotation policy repository: policies and the runs that finish them.

Repositories never commit: the unit of work does (`ports.unit_of_work`).
"""

from __future__ import annotations

import abc
from uuid import UUID

from core.domain.rotation import RotationPolicy, RotationRun


class RotationPolicyRepository(abc.ABC):
    """At most one rotation policy per secret; it goes when the secret is purged."""

    @abc.abstractmethod
    def get(self, secret_id: UUID) -> RotationPolicy | None: ...

    @abc.abstractmethod
    def put(self, policy: RotationPolicy) -> None:
        """Insert or replace the secret's policy (a worker's claim on it is dropped)."""

    @abc.abstractmethod
    def delete(self, secret_id: UUID) -> None: ...

    @abc.abstractmethod
    def finish_run(self, run: RotationRun) -> bool:
        """Record how a rotation went. With `run.worker`, only if that worker still holds the
        policy's claim, which is then released and `next_run_at` set; without, the schedule
        and any claim stay as they are. Whether a policy was updated."""
