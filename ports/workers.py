"""What the operator sees of the workers: each running worker's heartbeat, and the work waiting.

Every `secretctl worker` (and the one `secretctl serve` runs) keeps one row of its own up to date
while it runs, and removes it when it stops; a row that stops changing belongs to a worker that
died. The backlog is counted from the tables the worker claims its jobs from.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WorkerRecord:
    """One worker's heartbeat: who it is, since when it runs, when it last said so, and what it
    is doing (`None` between passes)."""

    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    current_job: str | None = None


@dataclass(frozen=True)
class Backlog:
    """The work waiting for a worker: events not delivered yet and still to be tried
    (`outbox_pending`), events given up on after their last attempt (`outbox_given_up`),
    migrations waiting or running (`jobs_queued`), scheduled rotations whose time has come
    (`rotations_due`)."""

    outbox_pending: int
    outbox_given_up: int
    jobs_queued: int
    rotations_due: int


class WorkerRegistry(abc.ABC):
    """The workers' heartbeats and the backlog, each call its own short transaction."""

    @abc.abstractmethod
    def beat(self, record: WorkerRecord) -> None:
        """Write the worker's row (insert it if it is not there)."""

    @abc.abstractmethod
    def remove(self, worker_id: str) -> None:
        """Remove the worker's row: it stopped."""

    @abc.abstractmethod
    def forget_silent_since(self, moment: datetime) -> int:
        """Remove the rows whose last heartbeat is older than `moment`; how many."""

    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Every row, the latest heartbeat first."""

    @abc.abstractmethod
    def backlog(self, now: datetime) -> Backlog: ...
