"""The worker: the lifecycle jobs that run by themselves.

Each pass ends rotations' grace periods, sends expiry warnings, runs the due scheduled
rotations, prunes versions beyond `max_versions`, purges what outlived its retention window,
delivers the outbox's events, and runs the migrations between backends that are waiting (or
whose runner died: `core.migration`). Jobs are claimed under a lease (`core.domain.work.Lease`),
so several workers on one database never run the same job twice; each job is one transaction,
or resumable and idempotent (rotations, prunes and purges touch a backend first and the rows
after, so one that died half-way is finished by the next claim once its lease has expired).
The worker acts as the system principal `WORKER`, audited like anyone else; it never reads a
value. While it runs, a thread of its own writes its heartbeat (`ports.workers`): when, and the
job at hand, so a long job does not make it look dead; it removes its row when it stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from core.audit import AuditTrail
from core.backends import BackendRegistry
from core.changes import KEEP_HOURS
from core.domain.audit import AuditAction
from core.domain.errors import ServiceError
from core.domain.rotation import RotationPolicy
from core.domain.secrets import Secret, SecretVersion, VersionState
from core.domain.values import Principal, VersionKey
from core.domain.work import ExpiryNotice, Lease
from core.events import ChangeFeed, EventDelivery
from core.migration.service import MigrationService
from core.rotation import RotationService
from core.secret_access import audit_place
from core.secrets import SecretService
from ports.security import Clock
from ports.unit_of_work import UnitOfWork
from ports.workers import WorkerRecord, WorkerRegistry

log = logging.getLogger(__name__)

WORKER = Principal("worker", "worker", is_root=True, is_system=True)
MAX_BATCHES = 1000  # per job kind and pass: a bound, should a job keep coming back due
# A worker beats this often (or at each poll, if it polls more often); one silent for
# `ALIVE_WITHIN` is reported as not alive, and its row is removed after `FORGET_AFTER`.
HEARTBEAT_SECONDS = 10.0
ALIVE_WITHIN = timedelta(seconds=60)
FORGET_AFTER = timedelta(days=1)
Job = TypeVar("Job")


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 50
    lease: timedelta = timedelta(minutes=10)
    default_max_versions: int = 100
    expiry_warning_days: tuple[int, ...] = (30, 7, 1)
    keep_changes: timedelta = timedelta(hours=KEEP_HOURS)  # the change stream's log


@dataclass
class WorkReport:
    """What one pass did, job by job; `failed` counts jobs that raised."""

    grace_ended: int = 0
    expiry_notices: int = 0
    rotated: int = 0
    pruned: int = 0
    purged: int = 0
    delivered: int = 0
    changes_pruned: int = 0  # change-stream events past their retention
    migrations: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{item.name} {getattr(self, item.name)}" for item in fields(self))

    def __bool__(self) -> bool:
        """Whether the pass did (or failed) anything."""
        return any(getattr(self, item.name) for item in fields(self))


def effective_expiry(secret: Secret, current: SecretVersion | None) -> datetime | None:
    """When the served value expires: the earlier of the secret's and its current version's."""
    version_expiry = current.expires_at if current is not None else None
    moments = [moment for moment in (secret.expires_at, version_expiry) if moment is not None]
    return min(moments, default=None)


def due_warning(
    expires_at: datetime | None,
    last: ExpiryNotice | None,
    now: datetime,
    warning_days: Sequence[int],
) -> int | None:
    """The notice due now, in days before expiry: 0 once expired, else the smallest threshold
    the expiry is within. None when there is none, or it (or a later one) was sent for this
    same expiry time."""
    if expires_at is None:
        return None
    if now >= expires_at:
        due = 0
    else:
        within = [days for days in warning_days if expires_at - now <= timedelta(days=days)]
        if not within:
            return None
        due = min(within)
    if last is not None and last.expires_at == expires_at and last.days <= due:
        return None
    return due


def prunable(
    secret: Secret, versions: Sequence[SecretVersion], keep: int, now: datetime
) -> list[SecretVersion]:
    """The oldest versions to destroy so that at most `keep` hold a value: never the current or
    the pending one, nor one in its grace period."""
    holding = [record for record in versions if record.state is not VersionState.DESTROYED]
    excess = len(holding) - keep
    candidates = [
        record
        for record in holding
        if record.version not in (secret.current_version, secret.pending_version)
        and (record.disable_at is None or record.disable_at <= now)
    ]
    return candidates[: max(excess, 0)]


class Worker:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        backends: BackendRegistry,
        secrets: SecretService,
        rotation: RotationService,
        delivery: EventDelivery,
        events: ChangeFeed,
        audit: AuditTrail,
        worker_id: str,
        settings: WorkerSettings | None = None,
        migrations: MigrationService | None = None,
        registry: WorkerRegistry | None = None,
        host: str = "",
        pid: int = 0,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._backends = backends
        self._secrets = secrets
        self._rotation = rotation
        self._delivery = delivery
        self._events = events
        self._audit = audit
        self.id = worker_id
        self._settings = settings or WorkerSettings()
        self._migrations = migrations
        self._registry = registry
        self._host = host
        self._pid = pid
        self.current_job: str | None = None  # what the heartbeat reports

    def run_once(self) -> WorkReport:
        """Every job kind, batch after batch, until none is due."""
        report = WorkReport()
        limit = self._settings.batch_size
        days = self._settings.expiry_warning_days
        keep = self._settings.default_max_versions
        try:
            report.grace_ended = self._drain(
                report,
                "grace_end",
                lambda uow, lease: uow.work.claim_grace_ends(lease, limit),
                self._end_grace,
            )
            report.expiry_notices = self._drain(
                report,
                "expiry_notice",
                lambda uow, lease: uow.work.claim_expiry_notices(lease, limit, days),
                self._warn_of_expiry,
            )
            report.rotated = self._drain(
                report,
                "rotation",
                lambda uow, lease: uow.work.claim_rotations(lease, limit),
                self._rotate,
            )
            report.pruned = self._drain(
                report,
                "prune",
                lambda uow, lease: uow.work.claim_prunes(lease, limit, keep),
                self._prune,
            )
            report.purged = self._drain(
                report, "purge", lambda uow, lease: uow.work.claim_purges(lease, limit), self._purge
            )
            self.current_job = "delivery"
            for _ in range(MAX_BATCHES):
                delivered = self._delivery.deliver_due(WORKER, self._lease(), limit)
                report.delivered += delivered
                if not delivered:
                    break
            self.current_job = "change_retention"
            report.changes_pruned = self._prune_changes()
            report.migrations = self._run_migrations(report)
        finally:
            self.current_job = None
        return report

    def _prune_changes(self) -> int:
        """Drop change-stream events older than the retention (at least 24 h)."""
        keep = max(self._settings.keep_changes, timedelta(hours=KEEP_HOURS))
        with self._uow_factory() as uow:
            pruned = uow.outbox.prune_changes(self._clock.now() - keep)
            uow.commit()
        return pruned

    def _run_migrations(self, report: WorkReport) -> int:
        """Run the waiting migrations (or those whose runner died) to their end, one by one."""
        if self._migrations is None:
            return 0
        finished = 0
        self.current_job = "migration"
        for _ in range(MAX_BATCHES):
            try:
                job = self._migrations.run_due(self.id)
            except ServiceError as error:  # a backend down or missing: left to the next pass
                log.warning("worker %s: a migration stopped: %s", self.id, error.message)
                report.failed += 1
                break
            except Exception:
                log.warning("worker %s: a migration stopped", self.id, exc_info=True)
                report.failed += 1
                break
            if job is None:
                break
            finished += 1
        return finished

    def run(self, poll_seconds: float, stop: threading.Event) -> None:
        """Pass after pass, `poll_seconds` apart, until `stop` is set (a pass is finished
        first). A pass that fails (the database away, say) is logged and tried again. The
        heartbeat is written all along, every `HEARTBEAT_SECONDS` at most."""
        heartbeat = None
        if self._registry is not None:
            started_at = self._clock.now()
            heartbeat = Heartbeat(
                self._registry,
                lambda: self._heartbeat_record(started_at),
                min(poll_seconds, HEARTBEAT_SECONDS),
            )
            heartbeat.start()
        try:
            while not stop.is_set():
                try:
                    report = self.run_once()
                except Exception:
                    log.exception("worker %s: the pass failed", self.id)
                else:  # an idle pass is logged for debugging only
                    log.log(
                        logging.INFO if report else logging.DEBUG, "worker %s: %s", self.id, report
                    )
                stop.wait(poll_seconds)
        finally:
            if heartbeat is not None:
                heartbeat.stop()

    def _heartbeat_record(self, started_at: datetime) -> WorkerRecord:
        return WorkerRecord(
            id=self.id,
            host=self._host,
            pid=self._pid,
            started_at=started_at,
            last_heartbeat_at=self._clock.now(),
            current_job=self.current_job,
        )

    # -- the jobs: each returns whether it did its work ----------------------------------------

    def _end_grace(self, secret_id: UUID, lease: Lease) -> bool:
        """Disable the versions whose grace period after a rotation is over."""
        with (
            self._audit.attempt(
                WORKER, AuditAction.WORKER_END_GRACE, f"secret:{secret_id}"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            now = self._clock.now()
            ended = []
            secret = uow.secrets.get(secret_id)
            if secret is not None:
                attempt.learn(**audit_place(secret))
                for record in uow.secrets.list_versions(secret_id):
                    due = record.disable_at is not None and record.disable_at <= now
                    if record.state is VersionState.ENABLED and due:
                        uow.secrets.update_version(record.with_state(VersionState.DISABLED))
                        ended.append(record.version)
            uow.work.release(secret_id, lease.worker)
            attempt.succeed(uow, details={"versions": ended})
            uow.commit()
        return bool(ended)

    def _warn_of_expiry(self, secret_id: UUID, lease: Lease) -> bool:
        """Queue the `secret.expiring` (or `secret.expired`) event that is due, once."""
        with (
            self._audit.attempt(
                WORKER, AuditAction.WORKER_EXPIRY_NOTICE, f"secret:{secret_id}"
            ) as attempt,
            self._uow_factory() as uow,
        ):
            now = self._clock.now()
            secret = uow.secrets.get(secret_id)
            due = expires_at = None
            if secret is not None and not secret.is_deleted:
                attempt.learn(**audit_place(secret))
                current = uow.secrets.get_version(secret_id, secret.current_version)
                expires_at = effective_expiry(secret, current)
                last = uow.work.expiry_notice(secret_id)
                due = due_warning(expires_at, last, now, self._settings.expiry_warning_days)
            if due is not None and expires_at is not None and secret is not None:
                kind = "secret.expired" if due == 0 else "secret.expiring"
                self._events.record(
                    uow,
                    kind,
                    secret_id,
                    at=now,
                    actor=WORKER.id,
                    version=secret.current_version,
                    expires_at=expires_at.isoformat(),
                    warning_days=due or None,
                )
                uow.work.record_expiry_notice(secret_id, ExpiryNotice(expires_at, due))
            uow.work.release(secret_id, lease.worker)
            attempt.succeed(uow, details={"warning_days": due})
            uow.commit()
        return due is not None

    def _rotate(self, policy: RotationPolicy, lease: Lease) -> bool:
        return self._rotation.run_scheduled(WORKER, policy, lease)

    def _prune(self, secret_id: UUID, lease: Lease) -> bool:
        """Destroy the oldest values beyond `max_versions`: in the backend first (idempotent),
        then the rows; one that died in between is finished by the next claim."""
        with self._audit.attempt(
            WORKER, AuditAction.WORKER_PRUNE, f"secret:{secret_id}"
        ) as attempt:
            now = self._clock.now()
            with self._uow_factory() as uow:
                secret = uow.secrets.get(secret_id)
                victims: list[SecretVersion] = []
                if secret is not None:
                    attempt.learn(**audit_place(secret))
                    keep = secret.max_versions or self._settings.default_max_versions
                    victims = prunable(secret, uow.secrets.list_versions(secret_id), keep, now)
            for record in victims:
                key = VersionKey(secret_id, record.version)
                self._backends.get(record.backend).destroy(key, record.locator)
            with self._uow_factory() as uow:
                for record in victims:
                    uow.secrets.update_version(record.with_state(VersionState.DESTROYED))
                uow.work.release(secret_id, lease.worker)
                attempt.succeed(uow, details={"versions": [r.version for r in victims]})
                uow.commit()
        return bool(victims)

    def _purge(self, secret_id: UUID, lease: Lease) -> bool:
        """A secret past its retention window: values destroyed, rows gone. If a backend is
        down, the claim is kept until its lease runs out, and the purge is tried again then."""
        self._secrets.purge_secret(WORKER, secret_id)
        return True

    # -- claiming ------------------------------------------------------------------------------

    def _drain(
        self,
        report: WorkReport,
        kind: str,
        claim: Callable[[UnitOfWork, Lease], list[Job]],
        run: Callable[[Job, Lease], bool],
    ) -> int:
        """Claim batch after batch and run each job; how many did their work."""
        done = 0
        for _ in range(MAX_BATCHES):
            self.current_job = kind
            lease = self._lease()
            with self._uow_factory() as uow:
                claimed = claim(uow, lease)
                uow.commit()
            if not claimed:
                break
            for job in claimed:
                secret_id = job.secret_id if isinstance(job, RotationPolicy) else job
                self.current_job = f"{kind} secret:{secret_id}"
                try:
                    done += run(job, lease)
                except Exception:  # recorded by the job's audit attempt; the others go on
                    log.warning("worker %s: a job failed", self.id, exc_info=True)
                    report.failed += 1
        return done

    def _lease(self) -> Lease:
        now = self._clock.now()
        return Lease(worker=self.id, now=now, until=now + self._settings.lease)


class Heartbeat:
    """A worker's heartbeat, written by a thread of its own every `interval` seconds until it is
    stopped, then removed. One that cannot be written (the database away) is logged and written
    again at the next beat: the jobs go on regardless."""

    def __init__(
        self, registry: WorkerRegistry, record: Callable[[], WorkerRecord], interval: float
    ) -> None:
        self._registry = registry
        self._record = record
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, daemon=True)

    def start(self) -> None:
        """Remove the rows of workers silent for `FORGET_AFTER`, beat once, then go on."""
        first = self._record()
        try:
            self._registry.forget_silent_since(first.last_heartbeat_at - FORGET_AFTER)
        except Exception as error:
            log.warning("worker %s: old heartbeats not removed: %s", first.id, kind(error))
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        worker_id = self._record().id
        try:
            self._registry.remove(worker_id)
        except Exception as error:
            log.warning("worker %s: heartbeat not removed: %s", worker_id, kind(error))

    def _beat_until_stopped(self) -> None:
        while not self._stopped.wait(self._interval):
            self._beat()

    def _beat(self) -> None:
        record = self._record()
        try:
            self._registry.beat(record)
        except Exception as error:
            log.warning("worker %s: heartbeat not written: %s", record.id, kind(error))


def kind(error: Exception) -> str:
    """A failure as logged where its message might quote what was sent to the database."""
    return type(error).__name__
