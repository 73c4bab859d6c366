"""Rotation policies, the event outbox, and the worker's job claims, on SQLAlchemy Core.

A claim selects due rows `FOR UPDATE SKIP LOCKED` (on PostgreSQL; SQLite has no row locks and
takes one writer at a time, so run one worker there), then stamps them with the worker and the
end of its lease in a conditional UPDATE that only a free row (never claimed, or whose lease has
run out) passes. The claiming transaction is short: the job itself runs after it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from adapters.db.change_events import INSERT_CHANGE, change_values
from adapters.db.tables import change_events, outbox, rotation_policies, secrets, versions
from core.domain.changes import ChangeRecord
from core.domain.events import OutboxMessage
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.secrets import VersionState
from core.domain.work import ExpiryNotice, Lease
from ports.repositories.outbox import OutboxRepository
from ports.repositories.rotation import RotationPolicyRepository
from ports.repositories.work import WorkQueueRepository

POLICY_COLUMNS = (
    "rotator",
    "settings",
    "interval_seconds",
    "cron",
    "grace_seconds",
    "next_run_at",
    "last_run_at",
    "last_status",
    "last_error",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
)
MESSAGE_COLUMNS = ("event_id", "type", "target", "secret_id", "payload", "created_at")
DELIVERY_COLUMNS = ("attempts", "next_attempt_at", "delivered_at", "last_error")
RELEASED = {"claimed_by": None, "claimed_until": None}
DESTROYED = VersionState.DESTROYED.value


class SqlRotationPolicyRepository(RotationPolicyRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, secret_id: UUID) -> RotationPolicy | None:
        row = self._connection.execute(
            select(rotation_policies).where(rotation_policies.c.secret_id == secret_id)
        ).first()
        return None if row is None else _policy_from_row(row)

    def put(self, policy: RotationPolicy) -> None:
        self.delete(policy.secret_id)
        values = {column: getattr(policy, column) for column in POLICY_COLUMNS}
        self._connection.execute(
            insert(rotation_policies).values(secret_id=policy.secret_id, **values)
        )

    def delete(self, secret_id: UUID) -> None:
        self._connection.execute(
            delete(rotation_policies).where(rotation_policies.c.secret_id == secret_id)
        )

    def finish_run(self, run: RotationRun) -> bool:
        statement = update(rotation_policies).where(rotation_policies.c.secret_id == run.secret_id)
        values: dict[str, Any] = {
            "last_run_at": run.at,
            "last_status": run.status,
            "last_error": run.error,
        }
        if run.worker is not None:
            statement = statement.where(rotation_policies.c.claimed_by == run.worker)
            values |= RELEASED
        if run.next_run_at is not None:
            values["next_run_at"] = run.next_run_at
        return bool(self._connection.execute(statement.values(**values)).rowcount)


class SqlOutboxRepository(OutboxRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, messages: Sequence[OutboxMessage]) -> None:
        if messages:
            self._connection.execute(insert(outbox), [_message_values(m) for m in messages])

    def get(self, message_id: UUID) -> OutboxMessage | None:
        row = self._connection.execute(select(outbox).where(outbox.c.id == message_id)).first()
        return None if row is None else _message_from_row(row)

    def settle(self, message: OutboxMessage, worker: str) -> None:
        values = {column: getattr(message, column) for column in DELIVERY_COLUMNS}
        self._connection.execute(
            update(outbox)
            .where(outbox.c.id == message.id, outbox.c.claimed_by == worker)
            .values(**values, **RELEASED)
        )

    def prune_delivered(self, before: datetime) -> int:
        result = self._connection.execute(delete(outbox).where(outbox.c.delivered_at < before))
        return int(result.rowcount)

    def record_change(self, change: ChangeRecord) -> None:
        self._connection.execute(INSERT_CHANGE, change_values(change))

    def prune_changes(self, before: datetime) -> int:
        result = self._connection.execute(
            delete(change_events).where(change_events.c.created_at < before)
        )
        return int(result.rowcount)


class SqlWorkQueueRepository(WorkQueueRepository):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def claim_purges(self, lease: Lease, limit: int) -> list[UUID]:
        return self._claim_secrets(
            lease,
            limit,
            [secrets.c.deleted_at.is_not(None), secrets.c.purge_after <= lease.now],
            secrets.c.purge_after,
        )

    def claim_prunes(self, lease: Lease, limit: int, default_max_versions: int) -> list[UUID]:
        keep = func.coalesce(secrets.c.max_versions, default_max_versions)
        of_this_secret = and_(versions.c.secret_id == secrets.c.id, versions.c.state != DESTROYED)
        holding = select(func.count()).where(of_this_secret).scalar_subquery()
        prunable = exists().where(
            of_this_secret,
            versions.c.version != secrets.c.current_version,
            or_(
                secrets.c.pending_version.is_(None), versions.c.version != secrets.c.pending_version
            ),
            or_(versions.c.disable_at.is_(None), versions.c.disable_at <= lease.now),
        )
        conditions = [
            secrets.c.deleted_at.is_(None),
            secrets.c.latest_version > keep,  # cheap: fewer numbers given out, nothing to do
            holding > keep,
            prunable,
        ]
        return self._claim_secrets(lease, limit, conditions, secrets.c.id)

    def claim_grace_ends(self, lease: Lease, limit: int) -> list[UUID]:
        ended = exists().where(
            versions.c.secret_id == secrets.c.id,
            versions.c.state == VersionState.ENABLED.value,
            versions.c.disable_at <= lease.now,
        )
        return self._claim_secrets(lease, limit, [ended], secrets.c.id)

    def claim_expiry_notices(
        self, lease: Lease, limit: int, warning_days: Sequence[int]
    ) -> list[UUID]:
        """The condition of `core.worker.due_warning`, in SQL: within the widest window, and
        either never warned about this expiry time, or due a nearer threshold than the last."""
        if not warning_days:
            return []
        expiry = _effective_expiry()
        notified_days = secrets.c.expiry_notified_days
        nearer = [
            and_(notified_days > days, expiry <= lease.now + timedelta(days=days))
            for days in (*warning_days, 0)
        ]
        conditions = [
            secrets.c.deleted_at.is_(None),
            expiry.is_not(None),
            expiry <= lease.now + timedelta(days=max(warning_days)),
            or_(
                secrets.c.expiry_notified_for.is_(None),
                secrets.c.expiry_notified_for != expiry,
                *nearer,
            ),
        ]
        return self._claim_secrets(lease, limit, conditions, expiry)

    def claim_rotations(self, lease: Lease, limit: int) -> list[RotationPolicy]:
        due = (
            select(rotation_policies.c.secret_id)
            .join(secrets, secrets.c.id == rotation_policies.c.secret_id)
            .where(secrets.c.deleted_at.is_(None), rotation_policies.c.next_run_at <= lease.now)
            .order_by(rotation_policies.c.next_run_at)
        )
        claimed = self._claim(rotation_policies, rotation_policies.c.secret_id, due, lease, limit)
        rows = self._connection.execute(
            select(rotation_policies)
            .where(rotation_policies.c.secret_id.in_(claimed))
            .order_by(rotation_policies.c.next_run_at)
        )
        return [_policy_from_row(row) for row in rows]

    def claim_deliveries(self, lease: Lease, limit: int) -> list[OutboxMessage]:
        due = (
            select(outbox.c.id)
            .where(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= lease.now)
            .order_by(outbox.c.created_at, outbox.c.id)
        )
        claimed = self._claim(outbox, outbox.c.id, due, lease, limit)
        rows = self._connection.execute(
            select(outbox).where(outbox.c.id.in_(claimed)).order_by(outbox.c.created_at)
        )
        return [_message_from_row(row) for row in rows]

    def release(self, secret_id: UUID, worker: str) -> None:
        self._connection.execute(
            update(secrets)
            .where(secrets.c.id == secret_id, secrets.c.claimed_by == worker)
            .values(**RELEASED)
        )

    def expiry_notice(self, secret_id: UUID) -> ExpiryNotice | None:
        row = self._connection.execute(
            select(secrets.c.expiry_notified_for, secrets.c.expiry_notified_days).where(
                secrets.c.id == secret_id
            )
        ).first()
        if row is None or row.expiry_notified_for is None:
            return None
        return ExpiryNotice(row.expiry_notified_for, row.expiry_notified_days)

    def record_expiry_notice(self, secret_id: UUID, notice: ExpiryNotice) -> None:
        self._connection.execute(
            update(secrets)
            .where(secrets.c.id == secret_id)
            .values(expiry_notified_for=notice.expires_at, expiry_notified_days=notice.days)
        )

    def _claim_secrets(
        self,
        lease: Lease,
        limit: int,
        conditions: Sequence[ColumnElement[bool]],
        order: ColumnElement[Any],
    ) -> list[UUID]:
        due = select(secrets.c.id).where(*conditions).order_by(order, secrets.c.id)
        return self._claim(secrets, secrets.c.id, due, lease, limit)

    def _claim(
        self, table: Table, key: ColumnElement[Any], due: Select[Any], lease: Lease, limit: int
    ) -> list[Any]:
        """Claim up to `limit` of the rows `due` selects (their keys) that are free."""
        candidates = list(
            self._connection.execute(
                due.where(_free(table, lease.now))
                .limit(limit)
                .with_for_update(skip_locked=True, of=table)
            ).scalars()
        )
        if not candidates:
            return []
        self._connection.execute(
            update(table)
            .where(key.in_(candidates), _free(table, lease.now))
            .values(claimed_by=lease.worker, claimed_until=lease.until)
        )
        claimed = set(
            self._connection.execute(
                select(key).where(key.in_(candidates), table.c.claimed_by == lease.worker)
            ).scalars()
        )
        return [candidate for candidate in candidates if candidate in claimed]


def _free(table: Table, now: datetime) -> ColumnElement[bool]:
    return or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)


def _effective_expiry() -> ColumnElement[Any]:
    """The earlier of the secret's expiry and its current version's (either may be unset)."""
    current = (
        select(versions.c.expires_at)
        .where(
            versions.c.secret_id == secrets.c.id, versions.c.version == secrets.c.current_version
        )
        .scalar_subquery()
    )
    return case(
        (secrets.c.expires_at.is_(None), current),
        (current.is_(None), secrets.c.expires_at),
        (secrets.c.expires_at < current, secrets.c.expires_at),
        else_=current,
    )


def _policy_from_row(row: Row[Any]) -> RotationPolicy:
    return RotationPolicy(
        secret_id=row.secret_id,
        **{column: getattr(row, column) for column in POLICY_COLUMNS},
    )


def _message_values(message: OutboxMessage) -> dict[str, Any]:
    columns = (*MESSAGE_COLUMNS, *DELIVERY_COLUMNS)
    return {"id": message.id, **{column: getattr(message, column) for column in columns}}


def _message_from_row(row: Row[Any]) -> OutboxMessage:
    columns = (*MESSAGE_COLUMNS, *DELIVERY_COLUMNS)
    return OutboxMessage(id=row.id, **{column: getattr(row, column) for column in columns})
