# ruff: noqa: S105 - the audit action names ("secret.read_value", "token.issue") are no passwords
"""The audit trail's values: an audited attempt, where it came from, its place in the hash
chain, signed checkpoints, and what a search or an append of the chain names.

`AuditEvent.bounded` applies what every store keeps (`core.domain.audit_bounds`); the chain
itself (hashing, appending, verifying) is core's `core.audit`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

from core.domain.audit_bounds import (
    OUT_OF_RANGE,
    TEXT_LIMITS,
    VERSION_MAX,
    VERSION_MIN,
    bounded_details,
    bounded_text,
    number_text,
)


class AuditAction(enum.StrEnum):
    """What an audited attempt was: the `action` of every event core writes. The values are
    the texts stored in the trail and shown by the API; they never change."""

    AUDIT_EXPORT = "audit.export"
    AUDIT_PRUNE = "audit.prune"
    AUDIT_VERIFY = "audit.verify"
    AUTH_AUTHENTICATE = "auth.authenticate"
    AUTH_RATE_LIMITED = "auth.rate_limited"
    BACKEND_ADOPT = "backend.adopt"
    BINDING_CREATE = "binding.create"
    BINDING_DELETE = "binding.delete"
    BINDING_LIST = "binding.list"
    KEY_REWRAP = "key.rewrap"
    KEY_REWRAP_BATCH = "key.rewrap_batch"
    KEY_ROTATE = "key.rotate"
    MIGRATION_FINISH = "migration.finish"
    MIGRATION_LIST = "migration.list"
    MIGRATION_PLAN = "migration.plan"
    MIGRATION_READ = "migration.read"
    MIGRATION_START = "migration.start"
    REPORT_EXPIRING = "report.expiring"
    REPORT_NEVER_READ = "report.never_read"
    REPORT_ROTATION_OVERDUE = "report.rotation_overdue"
    REPORT_STALE_TOKENS = "report.stale_tokens"
    SCOPE_CREATE = "scope.create"
    SCOPE_DELETE = "scope.delete"
    SCOPE_LIST = "scope.list"
    SCOPE_READ = "scope.read"
    SECRET_ACCESS_REPORT = "secret.access_report"
    SECRET_ADOPT = "secret.adopt"
    SECRET_CREATE = "secret.create"
    SECRET_DELETE = "secret.delete"
    SECRET_EXPORT = "secret.export"
    SECRET_IMPORT = "secret.import"
    SECRET_LIST = "secret.list"
    SECRET_LIST_VERSIONS = "secret.list_versions"
    SECRET_MIGRATE = "secret.migrate"
    SECRET_MIGRATE_REMOVE_SOURCE = "secret.migrate.remove_source"
    SECRET_PURGE = "secret.purge"
    SECRET_READ_METADATA = "secret.read_metadata"
    SECRET_READ_VALUE = "secret.read_value"
    SECRET_READ_VERSION = "secret.read_version"
    SECRET_RESOLVE = "secret.resolve"
    SECRET_RESTORE = "secret.restore"
    SECRET_ROLLBACK = "secret.rollback"
    SECRET_ROTATE = "secret.rotate"
    SECRET_ROTATE_ABANDON = "secret.rotate.abandon"
    SECRET_ROTATE_PENDING = "secret.rotate.pending"
    SECRET_ROTATION_POLICY_DELETE = "secret.rotation_policy.delete"
    SECRET_ROTATION_POLICY_READ = "secret.rotation_policy.read"
    SECRET_ROTATION_POLICY_SET = "secret.rotation_policy.set"
    SECRET_UPDATE = "secret.update"
    SECRET_VERSION_DESTROY = "secret.version.destroy"
    SECRET_VERSION_DISABLE = "secret.version.disable"
    SECRET_VERSION_ENABLE = "secret.version.enable"
    SECRET_WRITE_VALUE = "secret.write_value"
    SERVICE_ACCOUNT_CREATE = "service_account.create"
    SERVICE_ACCOUNT_DELETE = "service_account.delete"
    SERVICE_ACCOUNT_LIST = "service_account.list"
    SERVICE_ACCOUNT_READ = "service_account.read"
    TOKEN_ISSUE = "token.issue"
    TOKEN_LIST = "token.list"
    TOKEN_REVOKE = "token.revoke"
    WORKER_DELIVER_EVENTS = "worker.deliver_events"
    WORKER_END_GRACE = "worker.end_grace"
    WORKER_EXPIRY_NOTICE = "worker.expiry_notice"
    WORKER_PRUNE = "worker.prune"
    WORKER_STATUS = "worker.status"


@dataclass(frozen=True)
class RequestInfo:
    """Where an action came from: the HTTP request, or the CLI / worker on the machine."""

    request_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    """One audited attempt. `seq`, `prev_hash` and `hash` are set when it joins the chain."""

    time: datetime
    actor: str
    actor_type: str
    action: str
    resource: str
    outcome: str
    request_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    scope: str | None = None
    scope_path: str | None = None
    version: int | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    def content(self) -> dict[str, Any]:
        """What the hash covers: everything but the chain fields themselves. Built field by
        field (not `asdict`, whose deep copies dominate the cost of verifying a long chain)."""
        fields = {name: getattr(self, name) for name in CONTENT_FIELDS}
        fields["time"] = self.time.isoformat()
        fields["details"] = dict(self.details)
        return fields

    def bounded(self) -> AuditEvent:
        """This event as every store keeps it (`core.domain.audit_bounds`): texts escaped and cut to
        their columns, a version out of its column's range left out (and noted in the
        details, as asked), details bounded. The event itself when it already is so (nearly
        always: that is checked fast); applying it again changes nothing."""
        fields = self.__dict__
        changes: dict[str, Any] = {}
        for name, limit in _TEXT_LIMITS:
            value = fields[name]  # checked inline: this runs for every event
            if value is None or (
                type(value) is str and len(value) <= limit and value.isprintable()
            ):
                continue
            changes[name] = bounded_text(value, limit)
        details = fields["details"]
        if details or type(details) is not dict:
            cleaned = bounded_details(details)
            if cleaned is not details:
                changes["details"] = cleaned
        version = fields["version"]
        if version is not None and not (
            type(version) is int and VERSION_MIN <= version <= VERSION_MAX
        ):
            noted = {
                **changes.get("details", details),
                OUT_OF_RANGE: {"version": number_text(version)},
            }
            changes.update(version=None, details=noted)
        return with_fields(self, **changes) if changes else self


_TEXT_LIMITS = tuple(TEXT_LIMITS.items())
CONTENT_FIELDS = tuple(
    field.name for field in fields(AuditEvent) if field.name not in ("seq", "prev_hash", "hash")
)


_EVENT_FIELDS = frozenset(field.name for field in fields(AuditEvent))


def with_fields(event: AuditEvent, **changes: Any) -> AuditEvent:
    """`dataclasses.replace(event, **changes)` for the hot path: a copy of the event's fields
    with the changes, without running the frozen dataclass's `__init__` field by field (a
    resolution makes three copies of each of its forty events). Unknown names are refused."""
    unknown = changes.keys() - _EVENT_FIELDS
    if unknown:
        raise TypeError(f"AuditEvent has no field {sorted(unknown)[0]!r}")
    copy = object.__new__(AuditEvent)
    copy.__dict__.update(event.__dict__, **changes)  # a new object: nothing frozen is changed
    return copy


class ChainLink(NamedTuple):
    """An event as verification reads it: its chain fields and the canonical JSON of the
    content its hash covers (`canonical_content`), without building the event itself."""

    seq: int
    prev_hash: str
    hash: str
    canonical: str


@dataclass(frozen=True)
class ChainSegment:
    """Events `first` to `last` of the chain, to verify from `anchor`, the trusted hash of
    event `first - 1` (GENESIS, the stored predecessor or a signed checkpoint's hash), with the
    signed checkpoints among them."""

    first: int
    last: int
    anchor: str
    checkpoints: tuple[Checkpoint, ...]


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    mac: str
    created_at: datetime


@dataclass(frozen=True)
class BrokenLink:
    """The first place the chain does not hold, and why."""

    seq: int
    problem: str


@dataclass(frozen=True)
class AuditFilter:
    """What to find in the audit trail; None means any. `before_seq` is the query cursor."""

    actor: str | None = None
    resource: str | None = None
    scope_path: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None


@dataclass(frozen=True)
class AppendedBatch:
    """What `ChainAppender.append_committed` did: the head it found under the chain's lock (the
    batch's events follow it), the change generation then, and whether it wrote the batch."""

    head_seq: int
    head_hash: str
    generation: int
    written: bool
