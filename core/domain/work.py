"""The worker's bookkeeping: the lease it claims due work under, and expiry notices sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Lease:
    """A worker's claim on due jobs: taken at `now` by `worker`, held until `until`.

    A claim is a conditional update of the job's row, so two workers never hold the same job;
    on PostgreSQL the due rows are selected `FOR UPDATE SKIP LOCKED`, so workers claiming at
    the same moment take different rows instead of queueing. A worker that dies leaves its
    claims to expire, and the job is taken again.
    """

    worker: str
    now: datetime
    until: datetime


@dataclass(frozen=True)
class ExpiryNotice:
    """The last expiry warning sent for a secret: for which expiry time, and at how many days
    before it (0: the "expired" notice)."""

    expires_at: datetime
    days: int
