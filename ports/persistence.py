"""Repositories and the unit of work: how core reads and writes its metadata.

Repositories never commit. A use case opens a unit of work, changes things, and commits
explicitly; leaving the `with` block without a commit rolls everything back.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from core.domain.access import AccessQuery, RoleBinding
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
from core.domain.events import OutboxMessage
from core.domain.paging import Page, PageRequest
from core.domain.rotation import RotationPolicy, RotationRun
from core.domain.scopes import Scope, ScopeUsage
from core.domain.secrets import ResolveCandidate, Secret, SecretFilter, SecretVersion
from core.domain.values import ScopeRef
from core.domain.work import ExpiryNotice, Lease

if TYPE_CHECKING:
    from ports.jobs import JobRepository


class ScopeRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, ref: ScopeRef) -> Scope | None:
        """The scope named `ref`, or None."""

    @abc.abstractmethod
    def add(self, ref: ScopeRef, parent: Scope | None) -> Scope:
        """Register a scope below `parent`; raises `Conflict` if it exists already."""

    @abc.abstractmethod
    def search(self, scope_type: str | None, access: AccessQuery, page: PageRequest) -> Page[Scope]:
        """Scopes the access query lets the caller see, by type and external id."""

    @abc.abstractmethod
    def usage(self, scope: Scope) -> ScopeUsage:
        """Counts of what lives directly in the scope (soft-deleted secrets included)."""

    @abc.abstractmethod
    def delete(self, scope: Scope) -> None:
        """Remove an empty scope and the role bindings held at it."""


class SecretRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, secret: Secret) -> None:
        """Insert a new secret; raises `Conflict` if its name is taken in its scope."""

    @abc.abstractmethod
    def get(self, secret_id: UUID) -> Secret | None:
        """A secret by id, deleted or not."""

    def lock(self, secret_id: UUID) -> Secret | None:
        """`get`, with the secret's row locked until this unit of work ends: its other writers
        wait for it, so a write without `If-Match` never finds the revision moved under it. A
        store whose transactions never overlap need not override this."""
        return self.get(secret_id)

    @abc.abstractmethod
    def get_by_name(self, scope: ScopeRef, environment: str | None, name: str) -> Secret | None:
        """A secret by its path, deleted or not."""

    def get_with_version(
        self, secret_id: UUID, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        """A secret with one of its versions (the current one when `version` is None), for a
        value read: in one round trip where the store can, with the version's stored value
        when it lives in the service's own database (`SecretVersion.stored`)."""
        secret = self.get(secret_id)
        if secret is None:
            return None
        number = secret.current_version if version is None else version
        return secret, self.get_version(secret_id, number)

    def get_by_name_with_version(
        self, scope: ScopeRef, environment: str | None, name: str, version: int | None
    ) -> tuple[Secret, SecretVersion | None] | None:
        """`get_with_version` by the secret's path."""
        secret = self.get_by_name(scope, environment, name)
        if secret is None:
            return None
        number = secret.current_version if version is None else version
        return secret, self.get_version(secret.id, number)

    @abc.abstractmethod
    def update(self, secret: Secret, expected_revision: int) -> None:
        """Save `secret` only if its stored revision is still `expected_revision`.

        Raises `PreconditionFailed` when another writer got there first. The caller has
        already set `secret.revision` to the next value.
        """

    @abc.abstractmethod
    def delete(self, secret_id: UUID) -> None:
        """Remove the secret's rows for good (its versions too)."""

    @abc.abstractmethod
    def search(
        self, criteria: SecretFilter, page: PageRequest, access: AccessQuery
    ) -> Page[Secret]:
        """Secrets matching `criteria` that `access` lets the caller see, ordered by scope,
        name and environment."""

    @abc.abstractmethod
    def resolve(
        self,
        scopes: Sequence[ScopeRef],
        environment: str | None,
        visible: AccessQuery,
        readable: AccessQuery,
    ) -> list[ResolveCandidate]:
        """Live secrets of every scope in `scopes` and all their ancestors, for `environment`
        (and environment-agnostic ones), that `visible` lets the caller see — in one query."""

    @abc.abstractmethod
    def add_version(self, version: SecretVersion) -> None:
        """Insert a version; raises `Conflict` if that number exists already."""

    @abc.abstractmethod
    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        """One version of a secret, or None."""

    @abc.abstractmethod
    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        """Every version of a secret, oldest first."""

    @abc.abstractmethod
    def update_version(self, version: SecretVersion) -> None:
        """Save a version's state, `expires_at`, `not_before` and `disable_at` (nothing else
        of a version ever changes); raises `NotFound` if there is no such version."""

    @abc.abstractmethod
    def relocate_version(self, version: SecretVersion, backend: str, locator: str) -> None:
        """Point a version at a copy of its value in another backend (a migration), only if it
        still points where `version` says; raises `PreconditionFailed` if it does not."""

    def add_many(self, secrets: Sequence[Secret]) -> None:
        """`add` for many secrets at once (an import); one `add` each unless overridden."""
        for secret in secrets:
            self.add(secret)

    def update_many(self, updates: Sequence[tuple[Secret, int]]) -> None:
        """`update` for many (secret, expected revision) pairs; `PreconditionFailed` if any
        moved on. One `update` each unless overridden."""
        for secret, expected_revision in updates:
            self.update(secret, expected_revision)

    def add_versions(self, versions: Sequence[SecretVersion]) -> None:
        """`add_version` for many versions at once; one `add_version` each unless overridden."""
        for version in versions:
            self.add_version(version)

    def current_versions(self, secret_ids: Sequence[UUID]) -> dict[UUID, SecretVersion]:
        """The current version of each of these secrets that has one, by secret id; one
        `get` and `get_version` each unless overridden."""
        found = {}
        for secret_id in secret_ids:
            secret = self.get(secret_id)
            current = self.get_version(secret_id, secret.current_version) if secret else None
            if current is not None:
                found[secret_id] = current
        return found


class RoleBindingRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, binding: RoleBinding) -> None:
        """Insert a binding; its scope must exist."""

    @abc.abstractmethod
    def get(self, binding_id: UUID) -> RoleBinding | None: ...

    @abc.abstractmethod
    def delete(self, binding_id: UUID) -> None: ...

    @abc.abstractmethod
    def for_identities(self, identities: Sequence[str], now: datetime) -> list[RoleBinding]:
        """The unexpired bindings naming any of `identities`."""

    @abc.abstractmethod
    def at_or_above(self, scope_path: str, now: datetime) -> list[RoleBinding]:
        """The unexpired bindings held at the scope with this path or at any ancestor."""

    @abc.abstractmethod
    def search(
        self, scope: ScopeRef | None, principal: str | None, page: PageRequest
    ) -> Page[RoleBinding]:
        """Bindings held at exactly `scope` and/or naming `principal`."""


class ServiceAccountRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, account: ServiceAccount) -> None:
        """Insert an account; raises `Conflict` if its name is taken."""

    @abc.abstractmethod
    def get(self, account_id: UUID) -> ServiceAccount | None: ...

    @abc.abstractmethod
    def search(self, scope: ScopeRef | None, page: PageRequest) -> Page[ServiceAccount]: ...

    @abc.abstractmethod
    def delete(self, account_id: UUID) -> None:
        """Remove the account, its tokens and the role bindings naming it."""

    @abc.abstractmethod
    def add_token(self, token: ApiToken) -> None: ...

    @abc.abstractmethod
    def tokens(self, account_id: UUID) -> list[ApiToken]: ...

    @abc.abstractmethod
    def token(self, token_id: UUID) -> ApiToken | None:
        """One token by id (revoked and expired ones too)."""

    @abc.abstractmethod
    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, ServiceAccount] | None:
        """The token with this SHA-256 hash and its account, or None."""

    @abc.abstractmethod
    def revoke_token(self, token_id: UUID, at: datetime) -> None: ...

    @abc.abstractmethod
    def stale_tokens(
        self, unused_since: datetime, now: datetime
    ) -> list[tuple[ApiToken, ServiceAccount]]:
        """Live tokens (not revoked, not expired) unused since `unused_since`: last used
        before it, or never used and issued before it."""

    @abc.abstractmethod
    def touch_token(self, token_id: UUID, at: datetime, not_since: datetime) -> None:
        """Record a use, unless one was recorded after `not_since` (to spare writes)."""


class AuditRepository(abc.ABC):
    """The stored hash chain. Appending goes through `core.audit_chain.AuditChain`."""

    @abc.abstractmethod
    def lock_head(self) -> tuple[int, str]:
        """Take the chain's lock for this transaction; the last event's seq and hash
        (0 and the genesis hash while the chain is empty)."""

    @abc.abstractmethod
    def generation(self) -> int:
        """The change generation: how many committed transactions changed secrets, versions,
        scopes, bindings or service accounts. Read with `lock_head` (no extra round trip), so
        under the chain's lock it cannot move until this transaction ends."""

    @abc.abstractmethod
    def insert(self, events: Sequence[AuditEvent]) -> None:
        """Store events already placed in the chain."""

    @abc.abstractmethod
    def set_head(self, seq: int, digest: str) -> None: ...

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Store events already placed in the chain and move the head to the last of them
        (a store may do both in one round trip)."""
        self.insert(events)
        last = events[-1]
        assert last.seq is not None and last.hash is not None
        self.set_head(last.seq, last.hash)

    @abc.abstractmethod
    def head(self) -> tuple[int, str]:
        """The recorded end of the chain, read without taking its lock."""

    @abc.abstractmethod
    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    @abc.abstractmethod
    def checkpoints(self) -> list[Checkpoint]:
        """Every signed checkpoint, oldest first."""

    @abc.abstractmethod
    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AuditEvent]:
        """Events in chain order, streamed."""

    @abc.abstractmethod
    def chain_links(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[ChainLink]:
        """What verification reads of `events` (`core.audit_chain.link_of` of each), streamed,
        without building every event: verifying a long chain is bound by this."""

    @abc.abstractmethod
    def search(self, criteria: AuditFilter, limit: int) -> list[AuditEvent]:
        """Newest first, at most `limit`."""

    @abc.abstractmethod
    def resources_with(
        self, resources: Sequence[str], action: str, outcome: str, since: datetime
    ) -> set[str]:
        """Which of `resources` have an event of `action` with `outcome` since `since`."""

    @abc.abstractmethod
    def prune(self, through_seq: int) -> int:
        """Delete the events up to and including `through_seq`; how many went."""

    @abc.abstractmethod
    def first_seq(self) -> int | None:
        """The oldest event still stored, or None."""


class ChainSegments(abc.ABC):
    """Verification of consecutive segments of the audit chain side by side (in several
    processes), each from its own anchor. Optional: without it, a chain is verified in one
    pass."""

    processes: int  # how many segments it verifies at once

    @abc.abstractmethod
    def verify(
        self, segments: Sequence[ChainSegment], checkpoint_key: bytes, checkpoint_every: int
    ) -> list[tuple[int, BrokenLink | None]] | None:
        """For each segment, in order, what `core.audit_chain.verify_links` finds in its events
        (`first` to `last`, from `anchor`, with its checkpoints); None when they could not be
        verified this way (the caller then verifies in one pass)."""


class ChainAppender(abc.ABC):
    """A store's append of a whole batch of audit events as one committed transaction in one
    round trip: lock the chain, hash the events after its head (`core.audit_chain.chain_hash`),
    store them, move the head, commit. The chain's lock is then never held across the
    caller's waits. Optional: a store without it appends through the unit of work."""

    @abc.abstractmethod
    def append_committed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        checkpoint_every: int,
    ) -> AppendedBatch:
        """Append the events whose canonical contents (`core.audit_chain.canonical_content`) are
        given, in order, leaving out those whose required generation (not None) is not the
        current one. Writes nothing (`written` False) if the batch would reach a seq that is a
        multiple of `checkpoint_every`: its signed checkpoint needs a key the store does not
        hold. Raises `AuditEventRefused` when the store refuses an event's data (nothing is
        written; the caller tries the others without it), `AuditUnavailable` when it cannot
        be written at all."""

    @abc.abstractmethod
    def append_signed(
        self,
        contents: Sequence[str],
        required_generations: Sequence[int | None],
        sign: Callable[[AppendedBatch], Sequence[Checkpoint]],
    ) -> AppendedBatch:
        """`append_committed` for a batch that reaches a signed checkpoint, in one transaction:
        append (holding the chain's lock), ask `sign` for the checkpoints of the events as
        placed after the head it found, store them, commit. Nothing is stored if `sign` or
        the store fails."""


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


class OutboxRepository(abc.ABC):
    """Events waiting for delivery, written in the transaction of the change they report."""

    @abc.abstractmethod
    def add(self, messages: Sequence[OutboxMessage]) -> None: ...

    @abc.abstractmethod
    def get(self, message_id: UUID) -> OutboxMessage | None: ...

    @abc.abstractmethod
    def settle(self, message: OutboxMessage, worker: str) -> None:
        """Save a claimed message's delivery state (`delivered_at`, `attempts`,
        `next_attempt_at`, `last_error`) and release the claim, if `worker` still holds it."""

    @abc.abstractmethod
    def prune_delivered(self, before: datetime) -> int:
        """Delete messages delivered before `before`; how many went."""

    @abc.abstractmethod
    def record_change(self, change: ChangeRecord) -> None:
        """Append an event to the change stream's log (`core.changes`), giving it the next
        cursor; written whether or not any subscriber is configured."""

    @abc.abstractmethod
    def prune_changes(self, before: datetime) -> int:
        """Delete change-stream events written before `before`; how many went."""


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


class UnitOfWork(abc.ABC):
    scopes: ScopeRepository
    secrets: SecretRepository
    bindings: RoleBindingRepository
    service_accounts: ServiceAccountRepository
    audit: AuditRepository
    rotations: RotationPolicyRepository
    outbox: OutboxRepository
    work: WorkQueueRepository
    jobs: JobRepository

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every change since the unit of work began durable."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Discard what was not committed. Safe to call after a commit."""


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work. `read_only=True` promises that nothing will be written: the store
    may then skip the transaction (each read sees what is committed when it runs)."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...
