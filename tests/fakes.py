"""Hand-written in-memory fakes of the ports, for unit tests and the backend contract suite.

They behave like the real adapters where core can tell the difference: a unit of work only
makes its changes visible on commit, repositories enforce the same constraints as the tables
(unique names, foreign keys, gapless version keys, revision checks), queries filter by access
with the same rule as the SQL (`visible`, from `core.access`), and the backend binds each value
to the version it was written for. The audit trail is kept like the tables keep it: appends
take the chain's lock, and events exist only once their unit of work commits. Switches such as
`fail_next_put`, `fail_next_commit` or `audit_down` let a test walk the failure paths without a
mock.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, TypeVar
from uuid import UUID

from sqlalchemy import String

from adapters.audit_log import TransactionalAuditLog
from adapters.db.tables import audit_events
from core.adoption import adopted_secret_id
from core.audit import AuditTrail
from core.audit_chain import (
    GENESIS,
    AuditChain,
    chain_hash,
    derive_checkpoint_key,
    link_of,
    verify_links,
)
from core.domain.access import AccessQuery, Role, RoleBinding, Target
from core.domain.accounts import ApiToken, ServiceAccount
from core.domain.audit import (
    AppendedBatch,
    AuditEvent,
    AuditFilter,
    BrokenLink,
    ChainLink,
    ChainSegment,
    Checkpoint,
)
from core.domain.changes import ChangeRecord
from core.domain.errors import (
    AuditUnavailable,
    BackendUnavailable,
    Conflict,
    DeliveryFailed,
    InvalidInput,
    LeaseLost,
    NotFound,
    PreconditionFailed,
    RotationFailed,
    ValueIntegrityError,
    ValueTooLarge,
)
from core.domain.events import OutboxMessage
from core.domain.jobs import Job, JobItem
from core.domain.paging import Page, PageRequest, Slice
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.scopes import Scope, ScopeUsage
from core.domain.secrets import (
    ListPosition,
    ResolveCandidate,
    Secret,
    SecretFilter,
    SecretVersion,
    VersionState,
)
from core.domain.values import ScopeRef, ScopeType, SecretValue, VersionKey
from core.domain.work import ExpiryNotice, Lease
from core.secret_access import secret_target
from core.worker import due_warning, effective_expiry, prunable
from ports.audit import AuditSink
from ports.audit_log import ChangeListener
from ports.events import EventPublisher
from ports.formats import EntryError, ExportCipher, ExportDocument, ImportEntry, SecretFormat
from ports.jobs import JobRepository
from ports.repositories.access import RoleBindingRepository, ServiceAccountRepository
from ports.repositories.audit import AuditRepository, ChainAppender, ChainSegments
from ports.repositories.outbox import OutboxRepository
from ports.repositories.rotation import RotationPolicyRepository
from ports.repositories.scopes import ScopeRepository
from ports.repositories.secrets import SecretRepository
from ports.repositories.work import WorkQueueRepository
from ports.rotation import RotationTarget, Rotator
from ports.security import Clock
from ports.storage import BackendCapabilities, BackendHealth, ExternalSecret, StorageBackend
from ports.types import FieldProblem, SecretType, TypeCheck
from ports.unit_of_work import UnitOfWork

T = TypeVar("T")
R = TypeVar("R")

# -- persistence ----------------------------------------------------------------------------

# When rows that a test sets up directly (not through the code under test) were written.
SEEDED_AT = datetime(2024, 1, 1, tzinfo=UTC)


def _as_stored(record: R) -> R:
    """The record as the tables keep it: they refuse a naive datetime and give every other one
    back in UTC (`timestamptz`), whatever offset it was written with; so does the fake."""
    in_utc = {}
    for item in fields(record):  # type: ignore[arg-type]
        moment = getattr(record, item.name)
        if not isinstance(moment, datetime):
            continue
        if moment.tzinfo is None:
            raise ValueError(f"naive datetimes are not stored ({item.name})")
        if moment.tzinfo is not UTC:
            in_utc[item.name] = moment.astimezone(UTC)
    return replace(record, **in_utc) if in_utc else record  # type: ignore[type-var]


def visible(access: AccessQuery, target: Target, bindings: Iterable[RoleBinding]) -> bool:
    """Whether `access` lets its caller act on `target`: the rule of `core.access.allowed`,
    which `adapters/db/visibility.py` expresses in SQL. A personal scope is its owner's alone;
    an unrestricted caller passes every other scope; anyone else needs an active binding of
    one of the roles that covers the target."""
    if target.scope.type is ScopeType.USER:
        return access.user_id is not None and target.scope.id == access.user_id
    if access.unrestricted:
        return True
    return any(
        binding.principal in access.identities
        and binding.role in access.roles
        and binding.active(access.now)
        and binding.covers(target)
        for binding in bindings
    )


def _page(rows: Sequence[T], page: PageRequest) -> Page[T]:
    if page.page < 1 or page.page_size < 1:
        raise ValueError("page and page_size start at 1")
    items = rows[page.offset : page.offset + page.page_size]
    return Page(
        items=copy.deepcopy(list(items)), total=len(rows), page=page.page, page_size=page.page_size
    )


# What `SecretRepository.update` never changes, as in the SQL adapter.
FIXED_AT_CREATION = frozenset(
    {"id", "scope", "scope_path", "name", "environment", "type", "created_at", "created_by"}
)


@dataclass
class _Tables:
    """One copy of every row. Each operation checks what the database's constraints check.

    Rows that join a scope (secrets, bindings, service accounts) take their `scope_path` from
    it, as the SQL adapters do.
    """

    scopes: dict[ScopeRef, Scope] = field(default_factory=dict)
    secrets: dict[UUID, Secret] = field(default_factory=dict)
    versions: dict[UUID, dict[int, SecretVersion]] = field(default_factory=dict)
    bindings: dict[UUID, RoleBinding] = field(default_factory=dict)
    accounts: dict[UUID, ServiceAccount] = field(default_factory=dict)
    tokens: dict[UUID, ApiToken] = field(default_factory=dict)
    audit_events: dict[int, AuditEvent] = field(default_factory=dict)
    audit_head: tuple[int, str] = (0, GENESIS)  # the head row, as the migration seeds it
    generation: int = 0  # the head row's change generation (see `CACHED_OPERATIONS`)
    audit_checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    policies: dict[UUID, RotationPolicy] = field(default_factory=dict)
    outbox: dict[UUID, OutboxMessage] = field(default_factory=dict)
    changes: list[ChangeRecord] = field(default_factory=list)  # the change stream's log
    change_seq: int = 0  # the last cursor given out (never given out again)
    # The claim columns of secrets, policies and outbox rows: (table, key) -> (worker, until).
    claims: dict[tuple[str, UUID], tuple[str, datetime]] = field(default_factory=dict)
    expiry_notices: dict[UUID, ExpiryNotice] = field(default_factory=dict)
    jobs: dict[UUID, Job] = field(default_factory=dict)
    job_items: dict[tuple[UUID, UUID, int], JobItem] = field(default_factory=dict)

    # -- scopes

    def add_scope(
        self, ref: ScopeRef, parent_ref: ScopeRef | None, pk: int, created_at: datetime
    ) -> Scope:
        if ref in self.scopes:
            raise Conflict(f"scope {ref} already exists", details={"scope": str(ref)})
        parent = None if parent_ref is None else self.scopes.get(parent_ref)
        if parent_ref is not None and parent is None:
            raise Conflict(f"no parent scope {parent_ref}")  # a foreign key violation
        scope = Scope(
            pk=pk,
            ref=ref,
            path=f"{parent.path if parent else '/'}{pk}/",
            parent_pk=parent.pk if parent else None,
            created_at=created_at,
            parent=parent_ref,
        )
        self.scopes[ref] = scope
        return scope

    def delete_scope(self, ref: ScopeRef) -> None:
        scope = self.scopes.get(ref)
        if scope is None:
            return
        if (
            any(other.parent_pk == scope.pk for other in self.scopes.values())
            or any(secret.scope == ref for secret in self.secrets.values())
            or any(account.scope == ref for account in self.accounts.values())
        ):
            raise Conflict(f"scope {ref} is still referenced")  # a foreign key violation
        self.bindings = {k: b for k, b in self.bindings.items() if b.scope != ref}
        del self.scopes[ref]

    def scope_path_of(self, ref: ScopeRef) -> str:
        scope = self.scopes.get(ref)
        if scope is None:
            raise NotFound(f"no scope {ref}", details={"scope": str(ref)})
        return scope.path

    # -- secrets and versions

    def add_secret(self, secret: Secret) -> None:
        secret = _as_stored(secret)
        scope_path = self.scope_path_of(secret.scope)  # the scope foreign key
        if secret.id in self.secrets:
            raise Conflict(f"secret {secret.id} exists already")
        self._check_name_free(secret)
        self.secrets[secret.id] = replace(secret, scope_path=scope_path)
        self.versions[secret.id] = {}

    def update_secret(self, secret: Secret, expected_revision: int) -> None:
        """A conditional UPDATE: no row at that revision (or none at all) is a failed precondition.

        Only the mutable fields are saved; what a secret is created with stays as it was.
        """
        secret = _as_stored(secret)
        stored = self.secrets.get(secret.id)
        if stored is None or stored.revision != expected_revision:
            raise PreconditionFailed(
                f"secret {secret.id} is no longer at revision {expected_revision}",
                details={} if stored is None else {"revision": stored.revision},
            )
        changes = {
            item.name: getattr(secret, item.name)
            for item in fields(stored)
            if item.name not in FIXED_AT_CREATION
        }
        self.secrets[secret.id] = replace(stored, **changes)

    def delete_secret(self, secret_id: UUID) -> None:
        self.secrets.pop(secret_id, None)
        self.versions.pop(secret_id, None)  # ON DELETE CASCADE
        self.policies.pop(secret_id, None)
        self.expiry_notices.pop(secret_id, None)  # columns of the secret's row
        for table in ("secrets", "policies"):
            self.claims.pop((table, secret_id), None)

    def add_version(self, version: SecretVersion) -> None:
        version = _as_stored(version)
        if version.secret_id not in self.secrets:
            raise Conflict(f"no secret {version.secret_id}")  # a foreign key violation
        numbers = self.versions[version.secret_id]
        if version.version in numbers:
            raise Conflict(f"secret {version.secret_id} has a version {version.version} already")
        numbers[version.version] = version

    def _check_name_free(self, secret: Secret) -> None:
        """Unique (scope, environment, name) over every row: a deleted name stays reserved."""
        for other in self.secrets.values():
            if other.id != secret.id and _path(other) == _path(secret):
                raise Conflict(
                    f"secret '{secret.name}' exists already in scope {secret.scope}",
                    details={"id": str(other.id)},
                )

    # -- role bindings

    def add_binding(self, binding: RoleBinding) -> None:
        binding = _as_stored(binding)
        scope_path = self.scope_path_of(binding.scope)
        if binding.id in self.bindings:
            raise Conflict(f"role binding {binding.id} exists already")
        self.bindings[binding.id] = replace(binding, scope_path=scope_path)

    def delete_binding(self, binding_id: UUID) -> None:
        self.bindings.pop(binding_id, None)

    # -- service accounts and tokens

    def add_account(self, account: ServiceAccount) -> None:
        account = _as_stored(account)
        scope_path = self.scope_path_of(account.scope)
        if account.id in self.accounts or any(
            (other.scope, other.name) == (account.scope, account.name)
            for other in self.accounts.values()
        ):
            raise Conflict(
                f"scope {account.scope} has a service account named '{account.name}' already"
            )
        self.accounts[account.id] = replace(account, scope_path=scope_path)

    def delete_account(self, account_id: UUID) -> None:
        account = self.accounts.pop(account_id, None)
        if account is None:
            return
        self.tokens = {k: t for k, t in self.tokens.items() if t.account_id != account_id}
        self.bindings = {k: b for k, b in self.bindings.items() if b.principal != account.principal}

    def add_token(self, token: ApiToken) -> None:
        token = _as_stored(token)
        if token.account_id not in self.accounts:
            raise Conflict(f"no service account {token.account_id}")  # a foreign key violation
        if token.id in self.tokens or any(
            other.token_hash == token.token_hash for other in self.tokens.values()
        ):
            raise Conflict("that token exists already")
        self.tokens[token.id] = token

    def revoke_token(self, token_id: UUID, at: datetime) -> None:
        token = self.tokens.get(token_id)
        if token is not None and token.revoked_at is None:
            self.tokens[token_id] = replace(token, revoked_at=at)

    def touch_token(self, token_id: UUID, at: datetime, not_since: datetime) -> None:
        token = self.tokens.get(token_id)
        if token is not None and (token.last_used_at is None or token.last_used_at < not_since):
            self.tokens[token_id] = replace(token, last_used_at=at)

    # -- the audit trail

    def insert_audit_events(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            event = _as_stored(event)
            _check_audit_row(event)
            if event.seq in self.audit_events:
                raise AuditUnavailable(f"audit event {event.seq} exists already")  # the key
            # The details column is JSON: what comes back is what JSON makes of it.
            stored = replace(event, details=json.loads(json.dumps(event.details)))
            self.audit_events[stored.seq] = stored

    def set_audit_head(self, seq: int, digest: str) -> None:
        self.audit_head = (seq, digest)

    def add_audit_checkpoint(self, checkpoint: Checkpoint) -> None:
        checkpoint = _as_stored(checkpoint)
        if checkpoint.seq in self.audit_checkpoints:
            raise Conflict(f"a checkpoint at {checkpoint.seq} exists already")  # the key
        self.audit_checkpoints[checkpoint.seq] = checkpoint

    def prune_audit(self, through_seq: int) -> int:
        pruned = [seq for seq in self.audit_events if seq <= through_seq]
        for seq in pruned:
            del self.audit_events[seq]
        return len(pruned)

    # -- lifecycle: version states, rotation policies, the outbox, the worker's claims

    def update_version(self, version: SecretVersion) -> None:
        version = _as_stored(version)
        stored = self.versions.get(version.secret_id, {}).get(version.version)
        if stored is None:
            raise NotFound(f"secret {version.secret_id} has no version {version.version}")
        self.versions[version.secret_id][version.version] = replace(
            stored,
            state=version.state,
            expires_at=version.expires_at,
            not_before=version.not_before,
            disable_at=version.disable_at,
        )

    def relocate_version(self, version: SecretVersion, backend: str, locator: str) -> None:
        stored = self.versions.get(version.secret_id, {}).get(version.version)
        if stored is None or (stored.backend, stored.locator) != (version.backend, version.locator):
            raise PreconditionFailed(
                f"version {version.version} of secret {version.secret_id} has moved or is gone"
            )
        self.versions[version.secret_id][version.version] = replace(
            stored, backend=backend, locator=locator
        )

    # -- jobs

    def add_job(self, job: Job, items: list[JobItem]) -> None:
        job = _as_stored(job)
        if job.id in self.jobs:
            raise Conflict(f"job {job.id} exists")  # a primary key violation
        self.jobs[job.id] = job
        self.add_job_items(items)

    def add_job_items(self, items: list[JobItem]) -> None:
        for item in items:
            key = (item.job_id, item.secret_id, item.version)
            if key in self.job_items or item.job_id not in self.jobs:
                raise Conflict(f"job item {key} exists or has no job")  # key violations
            self.job_items[key] = item

    def update_job(self, job: Job) -> None:
        job = _as_stored(job)
        if job.id in self.jobs:
            self.jobs[job.id] = replace(job, kind=self.jobs[job.id].kind)

    def update_job_item(self, item: JobItem) -> None:
        key = (item.job_id, item.secret_id, item.version)
        if key in self.job_items:
            self.job_items[key] = item

    def claimable_jobs(
        self,
        job_id: UUID | None,
        kind: str,
        states: tuple[str, ...],
        now: datetime,
        take_over: bool,
    ) -> list[Job]:
        return sorted(
            (
                job
                for job in self.jobs.values()
                if job.kind == kind
                and job.state in states
                and (job_id is None or job.id == job_id)
                and (take_over or job.lease_until is None or job.lease_until < now)
            ),
            key=lambda job: (job.created_at, str(job.id)),
        )

    def claim_job(
        self, job_id: UUID, kind: str, states: tuple[str, ...], lease: Lease, take_over: bool
    ) -> None:
        """The conditional UPDATE of a claim; replayed at commit, a job another unit of work
        claimed in the meantime fails the commit (the row is locked in the database)."""
        if not self.claimable_jobs(job_id, kind, states, lease.now, take_over):
            raise Conflict(f"job {job_id} was claimed by another process")
        job = self.jobs[job_id]
        self.jobs[job_id] = replace(
            job, lease_owner=lease.worker, lease_until=lease.until, updated_at=lease.now
        )

    def hold_job(self, job_id: UUID, lease: Lease) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.lease_owner != lease.worker:
            raise LeaseLost(f"job {job_id} was taken over")  # the row is locked in the database
        self.jobs[job_id] = replace(job, lease_until=lease.until)

    def put_policy(self, policy: RotationPolicy) -> None:
        policy = _as_stored(policy)
        if policy.secret_id not in self.secrets:
            raise Conflict(f"no secret {policy.secret_id}")  # a foreign key violation
        self.policies[policy.secret_id] = policy
        self.claims.pop(("policies", policy.secret_id), None)  # a new row, unclaimed

    def delete_policy(self, secret_id: UUID) -> None:
        self.policies.pop(secret_id, None)
        self.claims.pop(("policies", secret_id), None)

    def finish_run(self, run: RotationRun) -> bool:
        policy = self.policies.get(run.secret_id)
        key = ("policies", run.secret_id)
        if policy is None:
            return False
        if run.worker is not None:
            if self.claims.get(key, ("", SEEDED_AT))[0] != run.worker:
                return False
            del self.claims[key]
        changes: dict[str, Any] = {
            "last_run_at": run.at,
            "last_status": run.status,
            "last_error": run.error,
        }
        if run.next_run_at is not None:
            changes["next_run_at"] = run.next_run_at
        self.policies[run.secret_id] = replace(policy, **changes)
        return True

    def add_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            message = _as_stored(message)
            if message.id in self.outbox:
                raise Conflict(f"outbox message {message.id} exists already")  # the key
            # The payload column is JSON: what comes back is what JSON makes of it.
            self.outbox[message.id] = replace(
                message, payload=json.loads(json.dumps(message.payload))
            )

    def settle(self, message: OutboxMessage, worker: str) -> None:
        key = ("outbox", message.id)
        stored = self.outbox.get(message.id)
        if stored is None or self.claims.get(key, ("", SEEDED_AT))[0] != worker:
            return
        del self.claims[key]
        self.outbox[message.id] = replace(
            stored,
            attempts=message.attempts,
            next_attempt_at=message.next_attempt_at,
            delivered_at=message.delivered_at,
            last_error=message.last_error,
        )

    def record_change(self, change: ChangeRecord) -> None:
        last = self.changes[-1].id if self.changes else 0
        self.changes.append(replace(change, id=max(last, self.change_seq) + 1))
        self.change_seq = self.changes[-1].id

    def prune_changes(self, before: datetime) -> int:
        kept = [change for change in self.changes if change.time >= before]
        pruned = len(self.changes) - len(kept)
        self.changes = kept
        return pruned

    def prune_delivered(self, before: datetime) -> int:
        pruned = [
            key
            for key, message in self.outbox.items()
            if message.delivered_at is not None and message.delivered_at < before
        ]
        for key in pruned:
            del self.outbox[key]
            self.claims.pop(("outbox", key), None)
        return len(pruned)

    def is_free(self, table: str, key: UUID, now: datetime) -> bool:
        claim = self.claims.get((table, key))
        return claim is None or claim[1] < now

    def claim(self, table: str, keys: Sequence[UUID], lease: Lease) -> None:
        """The conditional UPDATE of a claim. Replayed at commit, a row another unit of work
        claimed in the meantime fails the commit (the rows are locked in the database)."""
        for key in keys:
            if not self.is_free(table, key, lease.now):
                raise Conflict(f"{table} {key} was claimed by another worker")
            self.claims[(table, key)] = (lease.worker, lease.until)

    def release(self, table: str, key: UUID, worker: str) -> None:
        if self.claims.get((table, key), ("", SEEDED_AT))[0] == worker:
            del self.claims[(table, key)]

    def record_expiry_notice(self, secret_id: UUID, notice: ExpiryNotice) -> None:
        notice = _as_stored(notice)
        if secret_id in self.secrets:  # an UPDATE of the secret's row
            self.expiry_notices[secret_id] = notice


# PostgreSQL refuses a value longer than its column (SQLite does not), which the SQL adapter
# reports as `AuditUnavailable`; the fake refuses it too.
AUDIT_COLUMN_WIDTHS = {
    column.name: column.type.length
    for column in audit_events.columns
    if isinstance(column.type, String) and column.type.length is not None
}


def _check_audit_row(event: AuditEvent) -> None:
    if event.seq is None or event.prev_hash is None or event.hash is None:
        raise ValueError("an audit event is stored once it has its place in the chain")
    for column, width in AUDIT_COLUMN_WIDTHS.items():
        text = getattr(event, column)
        if text is not None and len(text) > width:
            raise AuditUnavailable(f"the audit trail cannot be written: {column} is too long")


def _audit_matches(event: AuditEvent, criteria: AuditFilter) -> bool:
    """The WHERE clause of `SqlAuditRepository.search`."""
    for name in ("actor", "resource", "action", "outcome"):
        wanted = getattr(criteria, name)
        if wanted is not None and getattr(event, name) != wanted:
            return False
    return (
        (
            criteria.scope_path is None
            or (event.scope_path is not None and event.scope_path.startswith(criteria.scope_path))
        )
        and (criteria.since is None or event.time >= criteria.since)
        and (criteria.until is None or event.time < criteria.until)
        and (criteria.before_seq is None or event.seq < criteria.before_seq)
    )


def _path(secret: Secret) -> tuple[ScopeRef, str | None, str]:
    return secret.scope, secret.environment, secret.name


def _sort_key(secret: Secret) -> tuple[str, str, str, str]:
    # Scope, name, environment; the tables store an environment-agnostic secret's as ''.
    return secret.scope.type.value, secret.scope.id, secret.name, secret.environment or ""


def _matches(
    secret: Secret, criteria: SecretFilter, policies: Mapping[UUID, RotationPolicy]
) -> bool:
    policy = policies.get(secret.id)
    return (
        (
            criteria.rotation_overdue_at is None
            or (
                policy is not None
                and (
                    policy.next_run_at < criteria.rotation_overdue_at
                    or policy.last_status == "failed"
                )
            )
        )
        and secret.is_deleted == criteria.deleted
        and (criteria.scope is None or secret.scope == criteria.scope)
        and (criteria.scope_type is None or secret.scope.type == criteria.scope_type)
        and (criteria.environment is None or secret.environment == criteria.environment)
        and (criteria.type is None or secret.type == criteria.type)
        and (criteria.prefix is None or secret.name.startswith(criteria.prefix))
        and (criteria.under_path is None or secret.scope_path.startswith(criteria.under_path))
        and (
            criteria.expires_before is None
            or (secret.expires_at is not None and secret.expires_at < criteria.expires_before)
        )
        and (criteria.created_before is None or secret.created_at < criteria.created_before)
        and all(secret.tags.get(key) == value for key, value in criteria.tags.items())
    )


class FakeDatabase:
    """The committed state every unit of work starts from, shared like a real database.

    It starts with the global root scope registered, as the migrations do (pk 1, path `/1/`).
    Scope keys come from a sequence that, as in a database, a rolled-back insert still uses up.
    Its switches make the next operations fail once each: `fail_next_update` (e.g. with
    `PreconditionFailed` to simulate a writer that got there first), `fail_next_commit` and
    `fail_next_audit_append`; while `audit_down` is set, no audit event can be written (the
    database refuses it, as `SqlAuditRepository` reports: `AuditUnavailable`).
    `add_scope` and `grant` write committed rows directly, for a test's setup: they do not
    count as commits.

    `audit_lock` is the unit of work holding the chain's lock (the head row's lock), from its
    `lock_head` until it commits or rolls back. Another unit of work asking for it then would
    wait forever in a single thread, so that is an error here.
    """

    def __init__(self) -> None:
        self.tables = _Tables()
        self._scope_keys = itertools.count(1)
        self.add_scope(ScopeRef.global_scope(), None)
        self.committed = 0
        self.audit_down = False
        self.audit_lock: FakeUnitOfWork | None = None
        self._failures: dict[str, list[BaseException]] = {"update": [], "commit": [], "audit": []}

    def next_scope_pk(self) -> int:
        return next(self._scope_keys)

    def add_scope(self, ref: ScopeRef, parent: ScopeRef | None) -> Scope:
        """Register a scope below `parent`, as the platform did before the test began."""
        scope = self.tables.add_scope(ref, parent, self.next_scope_pk(), SEEDED_AT)
        return copy.deepcopy(scope)

    def grant(
        self,
        principal: str,
        role: Role,
        scope: ScopeRef | None = None,
        *,
        secret_id: UUID | None = None,
        name_pattern: str | None = None,
        expires_at: datetime | None = None,
    ) -> RoleBinding:
        """Give `principal` a role at `scope` (the global one by default) and below."""
        binding = RoleBinding(
            id=uuid.uuid4(),
            principal=principal,
            role=role,
            scope=scope or ScopeRef.global_scope(),
            scope_path="",
            created_at=SEEDED_AT,
            created_by="user:setup",
            secret_id=secret_id,
            name_pattern=name_pattern,
            expires_at=expires_at,
        )
        self.tables.add_binding(binding)
        return self.tables.bindings[binding.id]

    def fail_next_update(self, error: BaseException, *, times: int = 1) -> None:
        """Make the next `times` calls of `SecretRepository.update` raise `error`."""
        self._failures["update"].extend([error] * times)

    def fail_next_commit(self, error: BaseException) -> None:
        """Make the next commit raise `error` and keep nothing of its unit of work."""
        self._failures["commit"].append(error)

    def fail_next_audit_append(self, *, times: int = 1) -> None:
        """Make the next `times` appends to the audit trail raise `AuditUnavailable`."""
        self._failures["audit"].extend([_audit_refused()] * times)

    def raise_injected(self, operation: str) -> None:
        """Raise the failure queued for `operation` ("update", "commit" or "audit"), if any."""
        if self._failures[operation]:
            raise self._failures[operation].pop(0)

    def snapshot(self) -> _Tables:
        return copy.deepcopy(self.tables)

    def all_versions(self) -> list[SecretVersion]:
        """Every committed version row of every secret, deleted or not."""
        return [row for rows in self.tables.versions.values() for row in rows.values()]

    def replace_version(self, secret_id: UUID, number: int, **changes: Any) -> None:
        """Change a committed version row in place, as an operator or a later migration might.

        The port has no use case for this yet (disable, destroy, expire a version); tests use it
        to put rows into those states.
        """
        rows = self.tables.versions[secret_id]
        rows[number] = replace(rows[number], **changes)

    def audit_events(self) -> list[AuditEvent]:
        """Every committed audit event, in chain order."""
        events = self.tables.audit_events
        return copy.deepcopy([events[seq] for seq in sorted(events)])

    def audit_checkpoints(self) -> list[Checkpoint]:
        checkpoints = self.tables.audit_checkpoints
        return copy.deepcopy([checkpoints[seq] for seq in sorted(checkpoints)])

    def outbox_messages(self) -> list[OutboxMessage]:
        """Every committed outbox message, oldest first."""
        messages = self.tables.outbox.values()
        return copy.deepcopy(sorted(messages, key=lambda m: (m.created_at, m.type, m.target)))

    def replace_audit_event(self, seq: int, **changes: Any) -> None:
        """Change a committed audit row in place, as someone with access to the database might."""
        self.tables.audit_events[seq] = replace(self.tables.audit_events[seq], **changes)


def _audit_refused() -> AuditUnavailable:
    return AuditUnavailable("the audit trail cannot be written: OperationalError")


class FakeScopeRepository(ScopeRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def get(self, ref: ScopeRef) -> Scope | None:
        return copy.deepcopy(self._uow.tables.scopes.get(ref))

    def add(self, ref: ScopeRef, parent: Scope | None) -> Scope:
        pk = self._uow.database.next_scope_pk()
        parent_ref = parent.ref if parent else None
        scope: Scope = self._uow.apply("add_scope", ref, parent_ref, pk, datetime.now(UTC))
        return copy.deepcopy(scope)

    def search(self, scope_type: str | None, access: AccessQuery, page: PageRequest) -> Page[Scope]:
        tables = self._uow.tables
        found = sorted(
            (
                scope
                for scope in tables.scopes.values()
                if (scope_type is None or scope.ref.type == scope_type)
                and visible(access, Target(scope.ref, scope.path), tables.bindings.values())
            ),
            key=lambda scope: (scope.ref.type.value, scope.ref.id),
        )
        return _page(found, page)

    def usage(self, scope: Scope) -> ScopeUsage:
        tables = self._uow.tables
        return ScopeUsage(
            children=sum(other.parent_pk == scope.pk for other in tables.scopes.values()),
            secrets=sum(secret.scope == scope.ref for secret in tables.secrets.values()),
            service_accounts=sum(a.scope == scope.ref for a in tables.accounts.values()),
        )

    def delete(self, scope: Scope) -> None:
        self._uow.apply("delete_scope", scope.ref)


class FakeSecretRepository(SecretRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, secret: Secret) -> None:
        self._uow.apply("add_secret", secret)

    def get(self, secret_id: UUID) -> Secret | None:
        return copy.deepcopy(self._uow.tables.secrets.get(secret_id))

    def get_by_name(self, scope: ScopeRef, environment: str | None, name: str) -> Secret | None:
        for secret in self._uow.tables.secrets.values():
            if _path(secret) == (scope, environment, name):
                return copy.deepcopy(secret)
        return None

    def update(self, secret: Secret, expected_revision: int) -> None:
        self._uow.database.raise_injected("update")
        self._uow.apply("update_secret", secret, expected_revision)

    def delete(self, secret_id: UUID) -> None:
        self._uow.apply("delete_secret", secret_id)

    def search(
        self, criteria: SecretFilter, page: PageRequest, access: AccessQuery
    ) -> Page[Secret]:
        tables = self._uow.tables
        found = sorted(
            (
                secret
                for secret in tables.secrets.values()
                if _matches(secret, criteria, tables.policies)
                and visible(access, secret_target(secret), tables.bindings.values())
            ),
            key=_sort_key,
        )
        return _page(found, page)

    def search_after(
        self,
        criteria: SecretFilter,
        after: ListPosition | None,
        page_size: int,
        access: AccessQuery,
    ) -> Slice[Secret, ListPosition]:
        if criteria.scope is None:
            raise ValueError("keyset paging lists one scope")
        tables = self._uow.tables
        found = sorted(
            (
                secret
                for secret in tables.secrets.values()
                if _matches(secret, criteria, tables.policies)
                and (after is None or ListPosition.of(secret) > after)
                and visible(access, secret_target(secret), tables.bindings.values())
            ),
            key=_sort_key,
        )
        items = copy.deepcopy(found[:page_size])
        more = len(found) > page_size
        return Slice(items, page_size, ListPosition.of(items[-1]) if more else None)

    def resolve(
        self,
        scopes: Sequence[ScopeRef],
        environment: str | None,
        visible_to: AccessQuery,
        readable_by: AccessQuery,
    ) -> list[ResolveCandidate]:
        tables = self._uow.tables
        context = [tables.scopes[ref].path for ref in scopes if ref in tables.scopes]
        candidates = []
        for secret in tables.secrets.values():
            target = secret_target(secret)
            current = tables.versions[secret.id].get(secret.current_version)
            if (
                not secret.is_deleted
                and secret.environment in {None, environment}
                and any(path.startswith(secret.scope_path) for path in context)
                and visible(visible_to, target, tables.bindings.values())
                and current is not None  # an inner join on the current version
            ):
                readable = visible(readable_by, target, tables.bindings.values())
                current = replace(current, stage=secret.stage_of(current.version))
                candidates.append(ResolveCandidate(secret, current, readable))
        return copy.deepcopy(candidates)

    def add_version(self, version: SecretVersion) -> None:
        self._uow.apply("add_version", version)

    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        record = self._uow.tables.versions.get(secret_id, {}).get(version)
        return None if record is None else self._staged(record)

    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        rows = self._uow.tables.versions.get(secret_id, {})
        return [self._staged(rows[number]) for number in sorted(rows)]

    def update_version(self, version: SecretVersion) -> None:
        self._uow.apply("update_version", version)

    def relocate_version(self, version: SecretVersion, backend: str, locator: str) -> None:
        self._uow.apply("relocate_version", version, backend, locator)

    def _staged(self, record: SecretVersion) -> SecretVersion:
        """A copy with its stage label, from the secret's pointers (a join in SQL)."""
        secret = self._uow.tables.secrets[record.secret_id]
        return replace(copy.deepcopy(record), stage=secret.stage_of(record.version))


class FakeRoleBindingRepository(RoleBindingRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, binding: RoleBinding) -> None:
        self._uow.apply("add_binding", binding)

    def get(self, binding_id: UUID) -> RoleBinding | None:
        return copy.deepcopy(self._uow.tables.bindings.get(binding_id))

    def delete(self, binding_id: UUID) -> None:
        self._uow.apply("delete_binding", binding_id)

    def for_identities(self, identities: Sequence[str], now: datetime) -> list[RoleBinding]:
        return copy.deepcopy(
            [
                binding
                for binding in self._uow.tables.bindings.values()
                if binding.principal in identities and binding.active(now)
            ]
        )

    def at_or_above(self, scope_path: str, now: datetime) -> list[RoleBinding]:
        found = [
            binding
            for binding in self._uow.tables.bindings.values()
            if scope_path.startswith(binding.scope_path) and binding.active(now)
        ]
        return copy.deepcopy(sorted(found, key=lambda b: (b.scope_path, b.principal)))

    def search(
        self, scope: ScopeRef | None, principal: str | None, page: PageRequest
    ) -> Page[RoleBinding]:
        if scope is not None:
            self._uow.tables.scope_path_of(scope)  # NotFound for an unknown scope, as in SQL
        found = sorted(
            (
                binding
                for binding in self._uow.tables.bindings.values()
                if (scope is None or binding.scope == scope)
                and (principal is None or binding.principal == principal)
            ),
            key=lambda b: (b.scope_path, b.principal, b.created_at),
        )
        return _page(found, page)


class FakeServiceAccountRepository(ServiceAccountRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, account: ServiceAccount) -> None:
        self._uow.apply("add_account", account)

    def get(self, account_id: UUID) -> ServiceAccount | None:
        return copy.deepcopy(self._uow.tables.accounts.get(account_id))

    def search(self, scope: ScopeRef | None, page: PageRequest) -> Page[ServiceAccount]:
        if scope is not None:
            self._uow.tables.scope_path_of(scope)  # NotFound for an unknown scope, as in SQL
        found = sorted(
            (a for a in self._uow.tables.accounts.values() if scope is None or a.scope == scope),
            key=lambda account: account.name,
        )
        return _page(found, page)

    def delete(self, account_id: UUID) -> None:
        self._uow.apply("delete_account", account_id)

    def add_token(self, token: ApiToken) -> None:
        self._uow.apply("add_token", token)

    def tokens(self, account_id: UUID) -> list[ApiToken]:
        found = [t for t in self._uow.tables.tokens.values() if t.account_id == account_id]
        return copy.deepcopy(sorted(found, key=lambda token: token.created_at))

    def token(self, token_id: UUID) -> ApiToken | None:
        return copy.deepcopy(self._uow.tables.tokens.get(token_id))

    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, ServiceAccount] | None:
        tables = self._uow.tables
        for token in tables.tokens.values():
            if token.token_hash == token_hash:
                return copy.deepcopy((token, tables.accounts[token.account_id]))
        return None

    def revoke_token(self, token_id: UUID, at: datetime) -> None:
        self._uow.apply("revoke_token", token_id, at)

    def stale_tokens(
        self, unused_since: datetime, now: datetime
    ) -> list[tuple[ApiToken, ServiceAccount]]:
        tables = self._uow.tables
        stale = sorted(
            (
                token
                for token in tables.tokens.values()
                if token.usable(now) and (token.last_used_at or token.created_at) < unused_since
            ),
            key=lambda token: token.created_at,
        )
        return copy.deepcopy([(token, tables.accounts[token.account_id]) for token in stale])

    def touch_token(self, token_id: UUID, at: datetime, not_since: datetime) -> None:
        self._uow.apply("touch_token", token_id, at, not_since)


class FakeAuditRepository(AuditRepository):
    """The chain's rows. `lock_head` takes the chain's lock and then reads the head row as last
    committed (what PostgreSQL's READ COMMITTED shows once the row lock is granted)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def lock_head(self) -> tuple[int, str]:
        self._uow.lock_audit_chain()
        return self._uow.tables.audit_head

    def insert(self, events: Sequence[AuditEvent]) -> None:
        if self._uow.database.audit_down:
            raise _audit_refused()
        self._uow.apply("insert_audit_events", list(events))

    def set_head(self, seq: int, digest: str) -> None:
        self._uow.apply("set_audit_head", seq, digest)

    def generation(self) -> int:
        return self._uow.tables.generation

    def head(self) -> tuple[int, str]:
        return self._uow.tables.audit_head

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._uow.apply("add_audit_checkpoint", checkpoint)

    def checkpoints(self) -> list[Checkpoint]:
        checkpoints = self._uow.tables.audit_checkpoints
        return copy.deepcopy([checkpoints[seq] for seq in sorted(checkpoints)])

    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AuditEvent]:
        events = self._uow.tables.audit_events
        for seq in sorted(events):
            if seq >= from_seq and (to_seq is None or seq <= to_seq):
                yield copy.deepcopy(events[seq])

    def chain_links(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[ChainLink]:
        return (link_of(event) for event in self.events(from_seq, to_seq))

    def search(self, criteria: AuditFilter, limit: int) -> list[AuditEvent]:
        events = self._uow.tables.audit_events
        found = [
            events[seq]
            for seq in sorted(events, reverse=True)
            if _audit_matches(events[seq], criteria)
        ]
        return copy.deepcopy(found[:limit])

    def resources_with(
        self, resources: Sequence[str], action: str, outcome: str, since: datetime
    ) -> set[str]:
        wanted = set(resources)
        return {
            event.resource
            for event in self._uow.tables.audit_events.values()
            if event.resource in wanted
            and (event.action, event.outcome) == (action, outcome)
            and event.time >= since
        }

    def prune(self, through_seq: int) -> int:
        pruned: int = self._uow.apply("prune_audit", through_seq)
        return pruned

    def first_seq(self) -> int | None:
        return min(self._uow.tables.audit_events, default=None)


class FakeRotationPolicyRepository(RotationPolicyRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def get(self, secret_id: UUID) -> RotationPolicy | None:
        return copy.deepcopy(self._uow.tables.policies.get(secret_id))

    def put(self, policy: RotationPolicy) -> None:
        self._uow.apply("put_policy", policy)

    def delete(self, secret_id: UUID) -> None:
        self._uow.apply("delete_policy", secret_id)

    def finish_run(self, run: RotationRun) -> bool:
        finished: bool = self._uow.apply("finish_run", run)
        return finished


class FakeOutboxRepository(OutboxRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, messages: Sequence[OutboxMessage]) -> None:
        self._uow.apply("add_outbox", list(messages))

    def get(self, message_id: UUID) -> OutboxMessage | None:
        return copy.deepcopy(self._uow.tables.outbox.get(message_id))

    def settle(self, message: OutboxMessage, worker: str) -> None:
        self._uow.apply("settle", message, worker)

    def prune_delivered(self, before: datetime) -> int:
        pruned: int = self._uow.apply("prune_delivered", before)
        return pruned

    def record_change(self, change: ChangeRecord) -> None:
        self._uow.apply("record_change", change)

    def prune_changes(self, before: datetime) -> int:
        pruned: int = self._uow.apply("prune_changes", before)
        return pruned


class FakeWorkQueueRepository(WorkQueueRepository):
    """The due conditions are `core.worker`'s own rules, which the SQL adapter expresses in
    its queries; a claim is the same conditional update."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def claim_purges(self, lease: Lease, limit: int) -> list[UUID]:
        due = sorted(
            (
                secret
                for secret in self._uow.tables.secrets.values()
                if secret.purge_after is not None
                and secret.is_deleted
                and secret.purge_after <= lease.now
            ),
            key=lambda secret: (secret.purge_after, str(secret.id)),
        )
        return self._claim_secrets([secret.id for secret in due], lease, limit)

    def claim_prunes(self, lease: Lease, limit: int, default_max_versions: int) -> list[UUID]:
        tables = self._uow.tables
        due = [
            secret.id
            for secret in tables.secrets.values()
            if not secret.is_deleted
            and prunable(
                secret,
                [tables.versions[secret.id][n] for n in sorted(tables.versions[secret.id])],
                secret.max_versions or default_max_versions,
                lease.now,
            )
        ]
        return self._claim_secrets(sorted(due, key=str), lease, limit)

    def claim_grace_ends(self, lease: Lease, limit: int) -> list[UUID]:
        tables = self._uow.tables
        due = [
            secret_id
            for secret_id, rows in tables.versions.items()
            if any(
                record.state is VersionState.ENABLED
                and record.disable_at is not None
                and record.disable_at <= lease.now
                for record in rows.values()
            )
        ]
        return self._claim_secrets(sorted(due, key=str), lease, limit)

    def claim_expiry_notices(
        self, lease: Lease, limit: int, warning_days: Sequence[int]
    ) -> list[UUID]:
        tables = self._uow.tables
        due = []
        for secret in tables.secrets.values():
            if secret.is_deleted or not warning_days:
                continue
            expiry = effective_expiry(
                secret, tables.versions[secret.id].get(secret.current_version)
            )
            last = tables.expiry_notices.get(secret.id)
            if due_warning(expiry, last, lease.now, warning_days) is not None:
                due.append((expiry, str(secret.id), secret.id))
        return self._claim_secrets([key for *_, key in sorted(due)], lease, limit)

    def claim_rotations(self, lease: Lease, limit: int) -> list[RotationPolicy]:
        tables = self._uow.tables
        due = sorted(
            (
                policy
                for policy in tables.policies.values()
                if policy.next_run_at <= lease.now
                and not tables.secrets[policy.secret_id].is_deleted
                and tables.is_free("policies", policy.secret_id, lease.now)
            ),
            key=lambda policy: (policy.next_run_at, str(policy.secret_id)),
        )[:limit]
        self._uow.apply("claim", "policies", [policy.secret_id for policy in due], lease)
        return copy.deepcopy(due)

    def claim_deliveries(self, lease: Lease, limit: int) -> list[OutboxMessage]:
        tables = self._uow.tables
        due = sorted(
            (
                message
                for message in tables.outbox.values()
                if message.delivered_at is None
                and message.next_attempt_at is not None
                and message.next_attempt_at <= lease.now
                and tables.is_free("outbox", message.id, lease.now)
            ),
            key=lambda message: (message.created_at, str(message.id)),
        )[:limit]
        self._uow.apply("claim", "outbox", [message.id for message in due], lease)
        return copy.deepcopy(due)

    def release(self, secret_id: UUID, worker: str) -> None:
        self._uow.apply("release", "secrets", secret_id, worker)

    def expiry_notice(self, secret_id: UUID) -> ExpiryNotice | None:
        return copy.deepcopy(self._uow.tables.expiry_notices.get(secret_id))

    def record_expiry_notice(self, secret_id: UUID, notice: ExpiryNotice) -> None:
        self._uow.apply("record_expiry_notice", secret_id, notice)

    def _claim_secrets(self, due: Sequence[UUID], lease: Lease, limit: int) -> list[UUID]:
        free = [key for key in due if self._uow.tables.is_free("secrets", key, lease.now)]
        self._uow.apply("claim", "secrets", free[:limit], lease)
        return free[:limit]


class FakeJobRepository(JobRepository):
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def add(self, job: Job, items: list[JobItem]) -> None:
        self._uow.apply("add_job", job, items)

    def get(self, job_id: UUID) -> Job | None:
        return copy.deepcopy(self._uow.tables.jobs.get(job_id))

    def search(self, kind: str, limit: int) -> list[Job]:
        found = [job for job in self._uow.tables.jobs.values() if job.kind == kind]
        found.sort(key=lambda job: (job.created_at, str(job.id)), reverse=True)
        return copy.deepcopy(found[:limit])

    def unfinished(self, kind: str) -> list[Job]:
        found = [
            job
            for job in self._uow.tables.jobs.values()
            if job.kind == kind and job.state in ("pending", "running")
        ]
        return copy.deepcopy(sorted(found, key=lambda job: (job.created_at, str(job.id))))

    def claim(
        self,
        job_id: UUID | None,
        kind: str,
        states: tuple[str, ...],
        lease: Lease,
        *,
        take_over: bool = False,
    ) -> Job | None:
        free = self._uow.tables.claimable_jobs(job_id, kind, states, lease.now, take_over)
        if not free:
            return None
        self._uow.apply("claim_job", free[0].id, kind, states, lease, take_over)
        return self.get(free[0].id)

    def hold(self, job_id: UUID, lease: Lease) -> bool:
        job = self._uow.tables.jobs.get(job_id)
        if job is None or job.lease_owner != lease.worker:
            return False
        self._uow.apply("hold_job", job_id, lease)
        return True

    def update(self, job: Job) -> None:
        self._uow.apply("update_job", job)

    def items(self, job_id: UUID, secret_id: UUID | None = None) -> list[JobItem]:
        found = [
            item
            for key, item in sorted(self._uow.tables.job_items.items(), key=_item_order)
            if key[0] == job_id and (secret_id is None or key[1] == secret_id)
        ]
        return copy.deepcopy(found)

    def pending_secrets(self, job_id: UUID, finished: tuple[str, ...]) -> list[UUID]:
        pending = {
            item.secret_id
            for item in self._uow.tables.job_items.values()
            if item.job_id == job_id and item.state not in finished
        }
        return sorted(pending, key=str)

    def add_items(self, items: list[JobItem]) -> None:
        if items:
            self._uow.apply("add_job_items", items)

    def update_item(self, item: JobItem) -> None:
        self._uow.apply("update_job_item", item)

    def kept_copies(self, secret_id: UUID, backend: str, state: str) -> bool:
        return any(
            item.secret_id == secret_id
            and item.source_backend == backend
            and item.state == state
            and item.version > 0
            for item in self._uow.tables.job_items.values()
        )

    def secrets_storing(
        self, backend: str, criteria: SecretFilter, current_only: bool
    ) -> list[UUID]:
        tables = self._uow.tables
        found = []
        for secret in tables.secrets.values():
            if not (
                (criteria.under_path is None or secret.scope_path.startswith(criteria.under_path))
                and (criteria.environment is None or secret.environment == criteria.environment)
                and (not criteria.prefix or secret.name.startswith(criteria.prefix))
            ):
                continue
            staged = (secret.current_version, secret.pending_version)
            holding = any(
                record.backend == backend
                and record.state is not VersionState.DESTROYED
                and (not current_only or record.version in staged)
                for record in tables.versions.get(secret.id, {}).values()
            )
            if secret.backend == backend or holding:
                found.append(secret.id)
        return sorted(found, key=str)


def _item_order(entry: tuple[tuple[UUID, UUID, int], JobItem]) -> tuple[str, str, int]:
    job_id, secret_id, version = entry[0]
    return (str(job_id), str(secret_id), version)


# The operations on what the read caches hold: secrets, versions, scopes, bindings, accounts
# (worker claims included: they write the secrets table too).
CACHED_OPERATIONS = frozenset(
    {
        "add_account", "add_binding", "add_scope", "add_secret", "add_token", "add_version",
        "claim", "delete_account", "delete_binding", "delete_scope", "delete_secret",
        "relocate_version", "release", "revoke_token", "update_secret", "update_version",
    }
)  # fmt: skip


class FakeUnitOfWork(UnitOfWork):
    """A transaction on a `FakeDatabase`.

    Reads see the data committed when the unit of work began, plus its own changes. Every change
    is also journaled; `commit` replays the journal onto the latest committed data, so a
    constraint that another unit of work broke in the meantime (a name taken, a revision moved
    on) fails the commit as it would in the database, and nothing is kept. Leaving without a
    commit discards everything. `committed` counts this unit of work's successful commits.
    """

    def __init__(self, database: FakeDatabase | None = None, *, read_only: bool = False) -> None:
        self.database = database if database is not None else FakeDatabase()
        self.read_only = read_only
        self.scopes = FakeScopeRepository(self)
        self.secrets = FakeSecretRepository(self)
        self.bindings = FakeRoleBindingRepository(self)
        self.service_accounts = FakeServiceAccountRepository(self)
        self.audit = FakeAuditRepository(self)
        self.rotations = FakeRotationPolicyRepository(self)
        self.outbox = FakeOutboxRepository(self)
        self.work = FakeWorkQueueRepository(self)
        self.jobs = FakeJobRepository(self)
        self.committed = 0
        self._begin()

    def apply(self, operation: str, *args: Any) -> Any:
        """Run a `_Tables` operation on this unit of work's copy and journal it for the commit."""
        if self.read_only:
            raise RuntimeError(f"{operation}: a read-only unit of work writes nothing")
        args = copy.deepcopy(args)  # the caller keeps its objects; the rows are ours
        result = getattr(self.tables, operation)(*copy.deepcopy(args))
        self._journal.append((operation, args))
        return result

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        try:
            self.database.raise_injected("commit")
            tables = self.database.snapshot()
            for operation, args in self._journal:
                getattr(tables, operation)(*copy.deepcopy(args))
        except BaseException:
            self._begin()
            raise
        if any(operation in CACHED_OPERATIONS for operation, _ in self._journal):
            tables.generation += 1  # as adapters/db/engine.py does for a changed cached table
        self.database.tables = tables
        self.database.committed += 1
        self.committed += 1
        self._begin()

    def rollback(self) -> None:
        self._begin()

    def lock_audit_chain(self) -> None:
        """Hold the chain's lock until this unit of work ends; see `FakeDatabase.audit_lock`."""
        database = self.database
        if database.audit_down:
            raise _audit_refused()
        database.raise_injected("audit")
        if database.audit_lock is None:
            database.audit_lock = self
            self.tables.audit_head = database.tables.audit_head
            self.tables.generation = database.tables.generation
        elif database.audit_lock is not self:
            raise RuntimeError(
                "another open unit of work holds the audit chain's lock: this one would wait "
                "for it forever (a deadlock, in one thread)"
            )

    def _begin(self) -> None:
        if self.database.audit_lock is self:
            self.database.audit_lock = None
        self.tables = self.database.snapshot()
        self._journal: list[tuple[str, tuple[Any, ...]]] = []


class FakeUnitOfWorkFactory:
    """Builds units of work on one shared `FakeDatabase`: what a use case takes as `uow_factory`."""

    def __init__(self, database: FakeDatabase | None = None) -> None:
        self.database = database if database is not None else FakeDatabase()

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.database, read_only=read_only)

    @property
    def committed(self) -> int:
        """Commits that succeeded, over every unit of work this factory built."""
        return self.database.committed


# -- the audit trail ------------------------------------------------------------------------


class FakeChainAppender(ChainAppender):
    """`ChainAppender` on the fake database, as PostgreSQL's `secret_audit_append` does it:
    the events rebuilt from their canonical contents, hashed after the head, one commit."""

    def __init__(self, uow_factory: FakeUnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory
        self.calls = 0
        self.signed_calls = 0
        self.written = 0  # calls that wrote their batch

    def append_committed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        checkpoint_every: int,
    ) -> AppendedBatch:
        self.calls += 1
        return self._append(contents, required_generations, checkpoint_every, None)

    def append_signed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        sign: Callable[[AppendedBatch], Sequence[Checkpoint]],
    ) -> AppendedBatch:
        self.signed_calls += 1
        return self._append(contents, required_generations, 0, sign)

    def _append(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        checkpoint_every: int,
        sign: Callable[[AppendedBatch], Sequence[Checkpoint]] | None,
    ) -> AppendedBatch:
        with self._uow_factory() as uow:
            head_seq, head_hash = uow.audit.lock_head()
            generation = uow.audit.generation()
            admitted = [
                canonical
                for canonical, required in zip(contents, required_generations, strict=True)
                if required is None or required == generation
            ]
            if checkpoint_every and (
                (head_seq + len(admitted)) // checkpoint_every > head_seq // checkpoint_every
            ):
                return AppendedBatch(head_seq, head_hash, generation, written=False)
            seq, prev_hash, events = head_seq, head_hash, []
            for canonical in admitted:
                seq += 1
                digest = chain_hash(seq, prev_hash, canonical)
                fields = json.loads(canonical)
                fields["time"] = datetime.fromisoformat(fields["time"])
                events.append(AuditEvent(**fields, seq=seq, prev_hash=prev_hash, hash=digest))
                prev_hash = digest
            if events:
                uow.audit.append(events)
            appended = AppendedBatch(head_seq, head_hash, generation, written=True)
            for checkpoint in sign(appended) if sign is not None else ():
                uow.audit.add_checkpoint(checkpoint)
            uow.commit()
        self.written += 1
        return appended


# Stands in for the key provider's key, from which the container derives the checkpoint key.
CHECKPOINT_KEY = derive_checkpoint_key(b"unit-test-key-provider-secret-32")


def make_audit_trail(
    uow_factory: Callable[[], UnitOfWork],
    clock: Clock,
    *,
    sinks: Sequence[AuditSink] = (),
    checkpoint_every: int = 1000,
    changes: ChangeListener | None = None,
) -> AuditTrail:
    """The audit trail as the container builds it, on the fakes, signing with `CHECKPOINT_KEY`
    (and with `changes`, the change feed that writes events to the outbox)."""
    chain = AuditChain(CHECKPOINT_KEY, checkpoint_every)
    return AuditTrail(TransactionalAuditLog(uow_factory, chain), chain, clock, sinks, changes)


@contextmanager
def recorded(uow_factory: FakeUnitOfWorkFactory) -> Iterator[list[AuditEvent]]:
    """The audit events committed while the block runs, in chain order."""
    seen = {event.seq for event in uow_factory.database.audit_events()}
    new: list[AuditEvent] = []
    try:
        yield new
    finally:
        new.extend(e for e in uow_factory.database.audit_events() if e.seq not in seen)


class RecordingSink(AuditSink):
    """An audit sink that keeps what it is sent, or fails while `down` is set."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.batches: list[list[AuditEvent]] = []
        self.down = False

    def emit(self, events: Sequence[AuditEvent]) -> None:
        if self.down:
            raise OSError(f"sink {self.name} is unreachable")
        self.batches.append(list(events))

    @property
    def events(self) -> list[AuditEvent]:
        return [event for batch in self.batches for event in batch]


# -- storage --------------------------------------------------------------------------------


@dataclass
class _StoredValue:
    key: VersionKey
    data: bytes


class InMemoryBackend(StorageBackend):
    """A storage backend that keeps values in a dict, bound to the version they were put for.

    Switches: `down` makes every call raise `BackendUnavailable(name)`; `fail_next_put` and
    `fail_next_destroy` make only the next such call raise it. `on_put` is called with the
    version key before a value is stored, so a test can let another writer act in the middle of
    a write. `read` lists the version keys whose values were served, `destroyed` the locators
    destroyed, `purged` the secrets purged, in order.
    """

    def __init__(
        self,
        name: str = "memory",
        capabilities: BackendCapabilities | None = None,
    ) -> None:
        self.name = name
        self.capabilities = capabilities or BackendCapabilities(max_value_bytes=1024 * 1024)
        self.values: dict[str, _StoredValue] = {}
        self.read: list[VersionKey] = []
        self.destroyed: list[str] = []
        self.purged: list[UUID] = []
        self.down = False
        self.fail_next_put = False
        self.fail_next_destroy = False
        self.on_put: Callable[[VersionKey], None] | None = None
        self.closed = False
        self._serial = itertools.count(1)

    def put(self, key: VersionKey, value: SecretValue) -> str:
        self._check_up()
        if self.fail_next_put:
            self.fail_next_put = False
            raise BackendUnavailable(self.name, "put failed")
        if len(value) > self.capabilities.max_value_bytes:
            raise ValueTooLarge(
                f"backend '{self.name}' holds at most {self.capabilities.max_value_bytes} bytes",
                details={"limit": self.capabilities.max_value_bytes, "size": len(value)},
            )
        if self.on_put is not None:
            self.on_put(key)
        locator = f"{key.secret_id}/{key.version}/{next(self._serial)}"
        self.values[locator] = _StoredValue(key, value.reveal())
        return locator

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        self._check_up()
        stored = self.values.get(locator)
        if stored is None:
            raise NotFound(f"backend '{self.name}' holds no value at {locator}")
        if stored.key != key:
            raise ValueIntegrityError(
                f"the value at {locator} belongs to another secret version",
                details={"backend": self.name},
            )
        self.read.append(key)
        return SecretValue(stored.data)

    def destroy(self, key: VersionKey, locator: str) -> None:
        self._check_up()
        if self.fail_next_destroy:
            self.fail_next_destroy = False
            raise BackendUnavailable(self.name, "destroy failed")
        self.values.pop(locator, None)
        self.destroyed.append(locator)

    def purge(self, secret_id: UUID) -> None:
        self._check_up()
        for locator, stored in list(self.values.items()):
            if stored.key.secret_id == secret_id:
                del self.values[locator]
        self.purged.append(secret_id)

    def health(self) -> BackendHealth:
        if self.down:
            return BackendHealth(ok=False, latency_ms=0.0, detail="down")
        return BackendHealth(ok=True, latency_ms=0.0)

    def close(self) -> None:
        self.closed = True

    def tamper(self, locator: str, data: bytes) -> None:
        """Overwrite a stored value behind the service's back, as an attacker with access might."""
        self.values[locator].data = data

    def _check_up(self) -> None:
        if self.down:
            raise BackendUnavailable(self.name, "down")


EXTERNAL = "external:"


class AdoptableBackend(InMemoryBackend):
    """The in-memory fake, plus values someone else put in the store (`external`, by external
    name), found by `list_external` and readable only as the version 1 that adopts them."""

    def __init__(self, name: str = "store", max_value_bytes: int = 64) -> None:
        super().__init__(name, BackendCapabilities(max_value_bytes=max_value_bytes))
        self.external: dict[str, bytes] = {}

    def list_external(self, prefix: str) -> list[ExternalSecret]:
        return [
            ExternalSecret(name, EXTERNAL + name)
            for name in self.external
            if name.startswith(prefix)
        ]

    def get(self, key: VersionKey, locator: str) -> SecretValue:
        if not locator.startswith(EXTERNAL):
            return super().get(key, locator)
        if key != VersionKey(adopted_secret_id(self.name, locator), 1):
            raise ValueIntegrityError("not this key's locator")
        return SecretValue(self.external[locator.removeprefix(EXTERNAL)])


# -- rotation and events --------------------------------------------------------------------


class ScriptedRotator(Rotator):
    """A rotator whose values are `<prefix>-1`, `<prefix>-2`… and whose owning system accepts
    them until `refuse` names a reason. `applied` lists what it was asked to accept; `on_apply`
    runs first (a crash, another writer…)."""

    def __init__(self, name: str = "scripted", prefix: str = "rotated") -> None:
        self.name = name
        self.prefix = prefix
        self.refuse: str | None = None
        self.applied: list[tuple[RotationTarget, bytes]] = []
        self.on_apply: Callable[[RotationTarget], None] | None = None
        self._serial = itertools.count(1)

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        unknown = set(settings) - {"note"}
        if unknown:
            raise InvalidInput(f"unknown settings {sorted(unknown)}", details={"field": "settings"})

    def generate(self, settings: Mapping[str, Any]) -> SecretValue:
        return SecretValue.from_text(f"{self.prefix}-{next(self._serial)}")

    def apply(
        self, target: RotationTarget, value: SecretValue, settings: Mapping[str, Any]
    ) -> None:
        if self.on_apply is not None:
            self.on_apply(target)
        if self.refuse is not None:
            raise RotationFailed(
                f"the owning system refused the new value: {self.refuse}",
                details={"reason": self.refuse},
            )
        self.applied.append((target, value.reveal()))


class RecordingPublisher(EventPublisher):
    """Keeps what it delivers; while `down` is set, every delivery fails."""

    def __init__(self) -> None:
        self.delivered: list[OutboxMessage] = []
        self.down = False

    def publish(self, message: OutboxMessage) -> None:
        if self.down:
            raise DeliveryFailed(f"subscriber '{message.target}' answered HTTP 503")
        self.delivered.append(copy.deepcopy(message))


# -- time -----------------------------------------------------------------------------------


class FixedClock(Clock):
    """A clock that stands still until a test sets or advances it. Always timezone-aware UTC."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
        if now is not None:
            self.set(now)

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = now.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


# -- secret types, formats and sealed files ---------------------------------------------------


class AnyValueType(SecretType):
    """A type that takes every value and derives nothing, like the `generic` plugin."""

    def __init__(self, name: str = "generic") -> None:
        self.name = name

    def validate(self, value: SecretValue) -> TypeCheck:
        return TypeCheck()

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {variable: value.reveal().decode("utf-8")}


class PinType(SecretType):
    """`pin`: 4 to 8 ASCII digits; its length is metadata. Problems never quote the value."""

    name = "pin"
    fields = ("pin",)
    sensitive_fields = frozenset({"pin"})

    def validate(self, value: SecretValue) -> TypeCheck:
        raw = value.reveal()
        if not (raw.isdigit() and raw.isascii() and 4 <= len(raw) <= 8):
            return TypeCheck(problems=(FieldProblem("pin", "must be 4 to 8 digits"),))
        return TypeCheck(metadata={"length": str(len(raw))})

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {variable: value.reveal().decode("ascii")}


class DatedType(SecretType):
    """`dated`: `YYYY-MM-DD:<secret>`, a value that carries its own expiry (midnight UTC of the
    date), as a certificate carries its notAfter."""

    name = "dated"
    fields = ("not_after", "secret")
    sensitive_fields = frozenset({"secret"})

    def validate(self, value: SecretValue) -> TypeCheck:
        date, _, secret = value.reveal().decode("utf-8", "replace").partition(":")
        try:
            expires_at = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return TypeCheck(problems=(FieldProblem("not_after", "is not a YYYY-MM-DD date"),))
        if not secret:
            return TypeCheck(problems=(FieldProblem("secret", "is missing"),))
        return TypeCheck(metadata={"not_after": date}, expires_at=expires_at)

    def environment(self, variable: str, value: SecretValue) -> dict[str, str]:
        return {variable: value.reveal().decode("utf-8").partition(":")[2]}


def fake_secret_types() -> dict[str, SecretType]:
    return {t.name: t for t in (AnyValueType(), PinType(), DatedType())}


class RecordsFormat(SecretFormat):
    """`records`: one JSON object per line, `{"name", "value", "type", "tags", "history",
    "style", "expires_at"}`; a line that is not one is an error at that line. It carries
    metadata, holds text values only, and keeps a style note in `records.style`."""

    name = "records"
    extensions = (".records",)
    media_type = "application/x-ndjson"
    carries_metadata = True
    style_tag = "records.style"

    def parse(self, stream: BinaryIO) -> Iterator[ImportEntry | EntryError]:
        for line, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                yield ImportEntry(
                    line=line,
                    name=item["name"],
                    value=_text_value(item.get("value")),
                    history=tuple(SecretValue.from_text(v) for v in item.get("history", [])),
                    type=item.get("type"),
                    tags=item.get("tags"),
                    style=item.get("style"),
                    expires_at=(
                        datetime.fromisoformat(item["expires_at"])
                        if item.get("expires_at")
                        else None
                    ),
                )
            except (ValueError, KeyError, TypeError):
                yield EntryError(line, "is not a record")

    def render(self, document: ExportDocument) -> bytes:
        lines = []
        for entry in document.entries:
            record: dict[str, Any] = {"name": entry.secret.name, "type": entry.secret.type}
            record["tags"] = entry.secret.tags
            if entry.value is not None:
                record["value"] = entry.value.reveal().decode("utf-8")
            if document.includes_versions:
                record["versions"] = [
                    {
                        "version": v.record.version,
                        "value": v.value.reveal().decode("utf-8") if v.value else None,
                        "unavailable": v.unavailable,
                    }
                    for v in entry.versions
                ]
            lines.append(json.dumps(record, sort_keys=True) + "\n")
        return "".join(lines).encode("utf-8")


def _text_value(text: str | None) -> SecretValue | None:
    return None if text is None else SecretValue.from_text(text)


class FakeCipher(ExportCipher):
    """Seals without encrypting (a fake), but like the real cipher it names the format, opens
    only with the passphrase it was sealed with, and refuses a changed file."""

    magic = b"FAKESEAL"

    def seal(self, plaintext: bytes, passphrase: str, format_name: str) -> bytes:
        name = format_name.encode("ascii")
        body = bytes([len(name)]) + name + plaintext
        return self.magic + self._tag(passphrase, body) + body

    def open(self, sealed: bytes, passphrase: str) -> tuple[str, bytes]:
        tag, body = sealed[len(self.magic) : len(self.magic) + 32], sealed[len(self.magic) + 32 :]
        if not sealed.startswith(self.magic) or tag != self._tag(passphrase, body):
            raise InvalidInput("cannot open the sealed file", details={"field": "passphrase"})
        length = body[0]
        return body[1 : 1 + length].decode("ascii"), body[1 + length :]

    @staticmethod
    def _tag(passphrase: str, body: bytes) -> bytes:
        return hashlib.sha256(passphrase.encode() + b"\0" + body).digest()


class FakeChainSegments(ChainSegments):
    """Verifies the segments one after the other in this process, on the fakes, and keeps
    what it was given. `answer`, when set, replaces its findings (a store that errs)."""

    def __init__(self, db: FakeUnitOfWorkFactory, processes: int = 2) -> None:
        self._db = db
        self.processes = processes
        self.calls: list[list[ChainSegment]] = []
        self.answer: Callable[[Sequence[ChainSegment]], Any] | None = None

    def verify(
        self, segments: Sequence[ChainSegment], checkpoint_key: bytes, checkpoint_every: int
    ) -> list[tuple[int, BrokenLink | None]] | None:
        self.calls.append(list(segments))
        if self.answer is not None:
            return self.answer(segments)  # type: ignore[no-any-return]
        found = []
        for segment in segments:
            with self._db() as uow:
                found.append(
                    verify_links(
                        uow.audit.chain_links(segment.first, segment.last),
                        segment.checkpoints,
                        checkpoint_key,
                        start_seq=segment.first,
                        start_prev_hash=segment.anchor,
                        checkpoint_every=checkpoint_every,
                    )
                )
        return found
