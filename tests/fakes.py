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
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import String

from adapters.db.tables import audit_events
from core.access import AccessQuery, Role, RoleBinding, Target
from core.audit import (
    GENESIS,
    AuditChain,
    AuditEvent,
    AuditTrail,
    Checkpoint,
    RequestInfo,
    derive_checkpoint_key,
)
from core.errors import (
    AuditUnavailable,
    BackendUnavailable,
    Conflict,
    NotFound,
    PreconditionFailed,
    ValueIntegrityError,
    ValueTooLarge,
)
from core.model import (
    ApiToken,
    Page,
    PageRequest,
    Scope,
    Secret,
    SecretFilter,
    SecretVersion,
    ServiceAccount,
)
from core.services import secret_target
from ports.audit import AuditSink
from ports.persistence import (
    AuditFilter,
    AuditRepository,
    ResolveCandidate,
    RoleBindingRepository,
    ScopeRepository,
    ScopeUsage,
    SecretRepository,
    ServiceAccountRepository,
    UnitOfWork,
)
from ports.security import Clock
from ports.storage import BackendCapabilities, BackendHealth, StorageBackend
from ports.values import ScopeRef, ScopeType, SecretValue, VersionKey

T = TypeVar("T")

# -- persistence ----------------------------------------------------------------------------

# When rows that a test sets up directly (not through the code under test) were written.
SEEDED_AT = datetime(2024, 1, 1, tzinfo=UTC)


def _check_aware(record: object) -> None:
    """The tables store timezone-aware UTC only and refuse a naive datetime; so does the fake."""
    for item in fields(record):  # type: ignore[arg-type]
        moment = getattr(record, item.name)
        if isinstance(moment, datetime) and moment.tzinfo is None:
            raise ValueError(f"naive datetimes are not stored ({item.name})")


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
    audit_checkpoints: dict[int, Checkpoint] = field(default_factory=dict)

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
        _check_aware(secret)
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
        _check_aware(secret)
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

    def add_version(self, version: SecretVersion) -> None:
        _check_aware(version)
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
        _check_aware(binding)
        scope_path = self.scope_path_of(binding.scope)
        if binding.id in self.bindings:
            raise Conflict(f"role binding {binding.id} exists already")
        self.bindings[binding.id] = replace(binding, scope_path=scope_path)

    def delete_binding(self, binding_id: UUID) -> None:
        self.bindings.pop(binding_id, None)

    # -- service accounts and tokens

    def add_account(self, account: ServiceAccount) -> None:
        _check_aware(account)
        scope_path = self.scope_path_of(account.scope)
        if account.id in self.accounts or any(
            other.name == account.name for other in self.accounts.values()
        ):
            raise Conflict(f"a service account named '{account.name}' exists already")
        self.accounts[account.id] = replace(account, scope_path=scope_path)

    def delete_account(self, account_id: UUID) -> None:
        account = self.accounts.pop(account_id, None)
        if account is None:
            return
        self.tokens = {k: t for k, t in self.tokens.items() if t.account_id != account_id}
        self.bindings = {k: b for k, b in self.bindings.items() if b.principal != account.principal}

    def add_token(self, token: ApiToken) -> None:
        _check_aware(token)
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
            _check_aware(event)
            _check_audit_row(event)
            if event.seq in self.audit_events:
                raise AuditUnavailable(f"audit event {event.seq} exists already")  # the key
            # The details column is JSON: what comes back is what JSON makes of it.
            stored = replace(event, details=json.loads(json.dumps(event.details)))
            self.audit_events[stored.seq] = stored

    def set_audit_head(self, seq: int, digest: str) -> None:
        self.audit_head = (seq, digest)

    def add_audit_checkpoint(self, checkpoint: Checkpoint) -> None:
        _check_aware(checkpoint)
        if checkpoint.seq in self.audit_checkpoints:
            raise Conflict(f"a checkpoint at {checkpoint.seq} exists already")  # the key
        self.audit_checkpoints[checkpoint.seq] = checkpoint

    def prune_audit(self, through_seq: int) -> int:
        pruned = [seq for seq in self.audit_events if seq <= through_seq]
        for seq in pruned:
            del self.audit_events[seq]
        return len(pruned)


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


def _matches(secret: Secret, criteria: SecretFilter) -> bool:
    return (
        secret.is_deleted == criteria.deleted
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
                if _matches(secret, criteria)
                and visible(access, secret_target(secret), tables.bindings.values())
            ),
            key=_sort_key,
        )
        return _page(found, page)

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
                candidates.append(ResolveCandidate(secret, current, readable))
        return copy.deepcopy(candidates)

    def add_version(self, version: SecretVersion) -> None:
        self._uow.apply("add_version", version)

    def get_version(self, secret_id: UUID, version: int) -> SecretVersion | None:
        return copy.deepcopy(self._uow.tables.versions.get(secret_id, {}).get(version))

    def list_versions(self, secret_id: UUID) -> list[SecretVersion]:
        rows = self._uow.tables.versions.get(secret_id, {})
        return [copy.deepcopy(rows[number]) for number in sorted(rows)]


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


class FakeUnitOfWork(UnitOfWork):
    """A transaction on a `FakeDatabase`.

    Reads see the data committed when the unit of work began, plus its own changes. Every change
    is also journaled; `commit` replays the journal onto the latest committed data, so a
    constraint that another unit of work broke in the meantime (a name taken, a revision moved
    on) fails the commit as it would in the database, and nothing is kept. Leaving without a
    commit discards everything. `committed` counts this unit of work's successful commits.
    """

    def __init__(self, database: FakeDatabase | None = None) -> None:
        self.database = database if database is not None else FakeDatabase()
        self.scopes = FakeScopeRepository(self)
        self.secrets = FakeSecretRepository(self)
        self.bindings = FakeRoleBindingRepository(self)
        self.service_accounts = FakeServiceAccountRepository(self)
        self.audit = FakeAuditRepository(self)
        self.committed = 0
        self._begin()

    def apply(self, operation: str, *args: Any) -> Any:
        """Run a `_Tables` operation on this unit of work's copy and journal it for the commit."""
        args = copy.deepcopy(args)  # the caller keeps its objects; the rows are ours
        result = getattr(self.tables, operation)(*copy.deepcopy(args))
        self._journal.append((operation, args))
        return result

    def commit(self) -> None:
        try:
            self.database.raise_injected("commit")
            tables = self.database.snapshot()
            for operation, args in self._journal:
                getattr(tables, operation)(*copy.deepcopy(args))
        except BaseException:
            self._begin()
            raise
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

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.database)

    @property
    def committed(self) -> int:
        """Commits that succeeded, over every unit of work this factory built."""
        return self.database.committed


# -- the audit trail ------------------------------------------------------------------------

# Stands in for the key provider's key, from which the container derives the checkpoint key.
CHECKPOINT_KEY = derive_checkpoint_key(b"unit-test-key-provider-secret-32")


def make_audit_trail(
    uow_factory: Callable[[], UnitOfWork],
    clock: Clock,
    *,
    sinks: Sequence[AuditSink] = (),
    request: RequestInfo | None = None,
    checkpoint_every: int = 1000,
) -> AuditTrail:
    """The audit trail as the container builds it, on the fakes, signing with `CHECKPOINT_KEY`."""
    chain = AuditChain(CHECKPOINT_KEY, checkpoint_every)
    return AuditTrail(uow_factory, chain, clock, sinks, request)


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
